"""Model manifests: the built-ins, extra folders, broken files skipped with a reason, runner import."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai.api import CLASSICAL_NOTE, ModelError
from ai.registry import ENV_VAR, Registry, default_registry, load_manifest

ROOT = Path(__file__).resolve().parents[2]
#: runners of the models listed by BUILTIN_PROVIDERS where their package is installed (TotalSegmentator, xrv)
PROVIDED = {"totalseg", "xrv-pretrained"}
GOOD = """\
id = "{id}"
name = "{name}"
version = "2.0"
modality = "CT"
method = "learned network (TorchScript)"
description = "test"
runner = "{runner}"
outputs = ["labels"]
[labels]
1 = "liver"
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_builtin_models_are_listed_as_classical_with_the_truth_table_labels():
    reg = Registry(extra_dirs=[])
    assert reg.problems == []
    ids = {m.id: m for m in reg.models() if m.runner not in PROVIDED}
    assert set(ids) == {"ct-body", "ct-lungs", "ct-bone", "ct-lung-nodules"}
    assert ids["ct-body"].labels == {1: "body"}
    assert ids["ct-lungs"].labels == {2: "lung_left", 3: "lung_right", 4: "airway"}
    assert ids["ct-bone"].labels == {7: "bone"}
    nod = ids["ct-lung-nodules"]
    assert nod.labels == {8: "nodule"} and nod.outputs == ("labels", "detections")
    assert nod.patch_size == (96, 160, 160) and nod.overlap == 0.25
    for m in ids.values():
        assert m.method == CLASSICAL_NOTE and m.is_classical and m.modality == "CT"
        assert m.runner == m.id and m.name and m.description and m.intensity  # the runner's short name
        assert m.as_dict()["contains_code"] is False
        assert set(m.supports) == {"cuda", "mps", "cpu"}
        json.dumps(m.as_dict())  # JSON-ready
    assert [m.name for m in reg.models()] == sorted(m.name for m in reg.models())


def test_extra_folders_from_the_environment_and_one_level_down(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "liver.toml", GOOD.format(id="liver", name="Liver", runner="ct-body"))
    write(b / "spleen", "model.toml", GOOD.format(id="spleen", name="Spleen", runner="ct-body"))
    write(b / "spleen" / "deeper", "model.toml", GOOD.format(id="deep", name="Deep", runner="ct-body"))
    monkeypatch.setenv(ENV_VAR, os.pathsep.join([str(a), str(b)]))
    reg = Registry()
    ids = [m.id for m in reg.models()]
    assert "liver" in ids and "spleen" in ids and "deep" not in ids and "ct-body" in ids
    m = reg.get("spleen")
    assert m.path == str(b / "spleen" / "model.toml") and m.version == "2.0" and m.labels == {1: "liver"}


@pytest.mark.parametrize("text, reason", [
    ("id = 'x\nname=", "not valid TOML"),
    (GOOD.format(id="noname", name="N", runner="ct-body").replace('name = "N"\n', ""), "missing field 'name'"),
    (GOOD.format(id="r", name="R", runner="no-colon"), "runner 'no-colon' is not one of radview's runners"),
    (GOOD.format(id="r", name="R", runner="collections:OrderedDict"), "a model folder cannot name other code"),
    (GOOD.format(id="o", name="O", runner="ct-body").replace('["labels"]', '["masks"]'), "outputs"),
    (GOOD.format(id="l", name="L", runner="ct-body").replace('1 = "liver"', 'x = "liver"'), "ids are integers"),
    (GOOD.format(id="d", name="D", runner="ct-body") + "[device]\nsupports = ['tpu']\n", "device.supports"),
    (GOOD.format(id="p", name="P", runner="ct-body") + "[input]\npatch_size = [1, 2]\n", "three numbers"),
])
def test_a_broken_manifest_is_skipped_with_a_reason(tmp_path, text, reason):
    write(tmp_path, "broken.toml", text)
    write(tmp_path, "fine.toml", GOOD.format(id="fine", name="Fine", runner="ct-body"))
    reg = Registry(extra_dirs=[tmp_path])
    assert "fine" in reg.ids() and len([i for i in reg.ids() if reg.get(i).runner not in PROVIDED]) == 5
    assert len(reg.problems) == 1 and "broken.toml" in reg.problems[0] and reason in reg.problems[0]


def test_duplicate_ids_keep_the_first_and_a_missing_folder_is_a_problem(tmp_path):
    write(tmp_path, "dup.toml", GOOD.format(id="ct-body", name="Impostor", runner="ct-body"))
    reg = Registry(extra_dirs=[tmp_path, tmp_path / "nope"])
    assert reg.get("ct-body").name == "CT body outline"
    assert any("already defined" in p for p in reg.problems)
    assert any("nope" in p and "not found" in p for p in reg.problems)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ModelError, match="unknown model 'nope'.*ct-body"):
        Registry(extra_dirs=[]).get("nope")


def test_load_runner_class_imports_registered_runners_and_explains_failures(tmp_path, monkeypatch):
    from dataclasses import replace

    from fake_models import install_runners

    install_runners(tmp_path / "site", {"ok": "collections:OrderedDict", "nomod": "no_such_pkg.models:Net",
                                        "nocls": "collections:NoSuchNet", "notcls": "os.path:join"}, "reg_test_dist")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in ("ok", "nomod", "nocls", "notcls"):
        write(tmp_path / "m", f"{name}.toml", GOOD.format(id=name, name=name.title(), runner=name))
    write(tmp_path / "m", "old.toml", GOOD.format(id="old", name="Old", runner="ai.runners.ct_models:BodyModel"))
    reg = Registry(extra_dirs=[tmp_path / "m"])
    assert reg.problems == []
    import collections

    from ai.runners.ct_models import BodyModel

    assert reg.load_runner_class(reg.get("ok")) is collections.OrderedDict
    assert reg.get("old").runner == "ct-body" and reg.load_runner_class(reg.get("old")) is BodyModel
    with pytest.raises(ModelError, match="Nomod: its code 'no_such_pkg.models' is not installed"):
        reg.load_runner_class(reg.get("nomod"))
    with pytest.raises(ModelError, match="has no runner class 'NoSuchNet'"):
        reg.load_runner_class(reg.get("nocls"))
    with pytest.raises(ModelError, match="'os.path:join' is not a runner class"):
        reg.load_runner_class(reg.get("notcls"))
    with pytest.raises(ModelError, match="is not one of radview's runners"):  # a manifest built in code, too
        reg.load_runner_class(replace(reg.get("ok"), runner="collections:OrderedDict"))


def test_parameters_resolve_with_request_options(tmp_path):
    write(tmp_path, "p.toml", GOOD.format(id="p", name="P", runner="ct-body") + "[parameters]\nt = 1\nu = 'x'\n")
    m = load_manifest(tmp_path / "p.toml")
    assert m.resolve_parameters({"t": 5}) == {"t": 5, "u": "x"}
    with pytest.raises(TypeError):
        m.parameters["t"] = 2  # frozen


def test_default_registry_is_cached():
    assert default_registry() is default_registry()


def test_package_data_lists_the_manifests():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "manifests/*.toml" in data["tool"]["setuptools"]["package-data"]["ai"]


def test_listing_models_and_importing_the_engine_modules_does_not_import_torch():
    code = ("import sys, json\n"
            "import ai.registry, ai.api, ai.engine, ai.engine_process\n"
            "ai.registry.default_registry().models()\n"
            "ai.engine.Engine(); ai.engine_process.EngineClient()\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'viewer', 'PySide6'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
