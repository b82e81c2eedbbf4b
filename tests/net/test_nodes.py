"""Node settings (the JSON file the settings dialog will edit) and the HTTP session a DICOMweb node gets: checked
on load, written atomically and privately, loopback by default, TLS verified unless the user turns it off."""
from __future__ import annotations

import json
import os
import stat

import pytest

from viewer.net.errors import SettingsError
from viewer.net.nodes import LocalAE, Node, NodeBook, default_path, load_nodes, parse_aet, save_nodes
from viewer.net.records import QueryCriteria, check_date_range, date_bounds
from viewer.net.web_session import make_session


def test_a_book_round_trips_through_its_file_written_for_the_user_only(tmp_path):
    path = tmp_path / "cfg" / "pacs-nodes.json"
    book = NodeBook(nodes=(Node(name="pacs", ae_title="ORTHANC", host="pacs.example.org", port=4242),
                           Node(name="web", dicomweb_url="https://pacs.example.org/dicom-web/", auth="bearer",
                                secret_env="PACS_TOKEN")),
                    local=LocalAE("RADVIEW", "127.0.0.1", 11112))
    save_nodes(book, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_nodes(path) == book
    data = json.loads(path.read_text())
    assert data["nodes"][1] == {"name": "web", "dicomweb_url": "https://pacs.example.org/dicom-web", "auth": "bearer",
                                "secret_env": "PACS_TOKEN"}  # defaults are not written
    assert load_nodes(tmp_path / "absent.json") == NodeBook()


def test_the_default_file_is_in_the_user_config_folder_or_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RADVIEW_PACS_NODES", raising=False)
    assert default_path().name == "pacs-nodes.json" and "radview" in str(default_path())
    monkeypatch.setenv("RADVIEW_PACS_NODES", str(tmp_path / "n.json"))
    assert default_path() == tmp_path / "n.json"


def test_radview_listens_on_loopback_unless_configured():
    assert LocalAE().host == "127.0.0.1" and LocalAE().is_loopback_only
    assert not LocalAE(host="0.0.0.0").is_loopback_only


@pytest.mark.parametrize("bad, why", [
    (dict(name="x"), "give an AE title, host and port"),
    (dict(name="x", ae_title="A" * 17, host="h", port=1), "1 to 16 printable"),
    (dict(name="x", ae_title="A", host="h", port=70000), "must be 1–65535"),
    (dict(name="x", ae_title="A", host="", port=104), "needs a host"),
    (dict(name="x", dicomweb_url="ftp://h/x"), "http:// or https://"),
    (dict(name="x", dicomweb_url="https://h", auth="digest"), "auth must be one of"),
    (dict(name="x", dicomweb_url="https://h", auth="basic"), "needs a username"),
    (dict(name="", dicomweb_url="https://h"), "needs a name"),
])
def test_bad_settings_say_what_is_wrong(bad, why):
    with pytest.raises(SettingsError, match=why):
        Node(**bad)


def test_a_file_with_an_unknown_key_or_a_duplicate_name_is_refused(tmp_path):
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"nodes": [{"name": "a", "dicomweb_url": "https://h", "colour": "red"}]}))
    with pytest.raises(SettingsError, match="unknown setting.*colour"):
        load_nodes(path)
    path.write_text(json.dumps({"nodes": [{"name": "a", "dicomweb_url": "https://h"}] * 2}))
    with pytest.raises(SettingsError, match="used twice: a"):
        load_nodes(path)
    path.write_text("{not json")
    with pytest.raises(SettingsError, match="not readable JSON"):
        load_nodes(path)


def test_parse_aet_and_find():
    node = parse_aet("ORTHANC@127.0.0.1:4242")
    assert (node.ae_title, node.host, node.port, node.is_dimse, node.is_dicomweb) == \
        ("ORTHANC", "127.0.0.1", 4242, True, False)
    assert parse_aet("PACS@[::1]:104").host == "::1"
    with pytest.raises(SettingsError, match="AE@HOST:PORT"):
        parse_aet("ORTHANC:4242")
    book = NodeBook().with_node(node)
    assert book.find("ORTHANC") is node and book.without_node("ORTHANC").nodes == ()
    with pytest.raises(SettingsError, match="no node named 'x'"):
        book.find("x")


def test_secrets_come_from_the_environment_when_named(monkeypatch):
    node = Node(name="w", dicomweb_url="https://h", auth="basic", username="u", secret_env="MY_PACS_PW")
    monkeypatch.delenv("MY_PACS_PW", raising=False)
    with pytest.raises(SettingsError, match="MY_PACS_PW .* is not set"):
        node.resolved_secret()
    monkeypatch.setenv("MY_PACS_PW", "s3cret")
    assert node.resolved_secret() == "s3cret"
    assert "s3cret" not in repr(Node(name="w", dicomweb_url="https://h", auth="bearer", secret="s3cret"))


def test_sessions_carry_the_credentials_and_verify_tls_by_default(tmp_path):
    basic = make_session(Node(name="b", dicomweb_url="https://h", auth="basic", username="u", secret="p"))
    assert basic.auth == ("u", "p") and basic.verify is True and "Authorization" not in basic.headers
    bearer = make_session(Node(name="t", dicomweb_url="https://h", auth="bearer", secret="tok"))
    assert bearer.headers["Authorization"] == "Bearer tok" and bearer.verify is True
    ca = tmp_path / "ca.pem"
    assert make_session(Node(name="c", dicomweb_url="https://h", ca_bundle=str(ca))).verify == str(ca)
    assert make_session(Node(name="i", dicomweb_url="https://h", verify_tls=False)).verify is False


@pytest.mark.parametrize("text, bounds", [("20120706", ("20120706", "20120706")), ("20120101-20121231",
                                          ("20120101", "20121231")), ("20120101-", ("20120101", "")),
                                          ("-20121231", ("", "20121231")), ("", ("", ""))])
def test_date_ranges(text, bounds):
    assert date_bounds(text) == bounds


@pytest.mark.parametrize("bad", ["2012", "20121231-20120101", "-", "2012-01-01", "20120101-2013"])
def test_bad_date_ranges_are_refused(bad):
    with pytest.raises(SettingsError, match="study date"):
        check_date_range(bad)
    with pytest.raises(SettingsError):
        QueryCriteria(study_date=bad)
