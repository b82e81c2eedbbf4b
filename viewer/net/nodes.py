"""PACS node settings: the nodes radview talks to and its own AE (the C-STORE SCP), kept in one JSON file.

The file is ``platformdirs.user_config_dir("radview")/pacs-nodes.json`` (or ``$RADVIEW_PACS_NODES``, or the
path given)::

    {"local": {"ae_title": "RADVIEW", "host": "127.0.0.1", "port": 11112, "receive": false},
     "nodes": [{"name": "pacs", "ae_title": "ORTHANC", "host": "pacs.example.org", "port": 4242},
               {"name": "web", "dicomweb_url": "https://pacs.example.org/dicom-web", "auth": "bearer",
                "secret_env": "PACS_TOKEN"}]}

A node is DIMSE (AE title, host, port), DICOMweb (a URL), or both. Credentials: ``auth`` is ``none``, ``basic``
(``username`` + secret) or ``bearer`` (secret = the token); the secret is read from the environment variable
``secret_env`` when set, otherwise from ``secret`` (the file is written readable by the user only). TLS
certificates are verified unless ``verify_tls`` is false; ``ca_bundle`` names extra trusted certificates.

The local AE listens on 127.0.0.1 unless the user configures another address: nothing listens on a public address
by default. ``receive`` (off by default) keeps radview's receiver running while the app runs ("Receive studies"),
so that the nodes can send studies at any time; otherwise it listens only while a C-MOVE of radview's runs.
Everything here is checked on load (:class:`~viewer.net.errors.SettingsError` with the reason); the file is
written atomically. Qt-free: the GUI's settings dialog edits a :class:`NodeBook` and saves it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from radview_base.atomic_file import atomic_path
from viewer.net.errors import SettingsError

ENV_FILE = "RADVIEW_PACS_NODES"
AUTH_KINDS = ("none", "basic", "bearer")
DEFAULT_CALLING_AET = "RADVIEW"
DEFAULT_SCP_PORT = 11112
DEFAULT_TIMEOUT_S = 30.0
_AE_OK = re.compile(r"^[\x20-\x7e]{1,16}$")


def check_ae_title(title: str, what: str = "AE title") -> str:
    """``title`` stripped, or :class:`SettingsError`: 1–16 printable ASCII characters, no backslash."""
    text = str(title).strip()
    if not _AE_OK.match(text) or "\\" in text:
        raise SettingsError(f"{what} {title!r}: 1 to 16 printable ASCII characters, no backslash")
    return text


def check_port(port, what: str = "port") -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise SettingsError(f"{what} {port!r}: not a number") from None
    if not 0 < value < 65536:
        raise SettingsError(f"{what} {value}: must be 1–65535")
    return value


def check_url(url: str) -> str:
    parts = urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"DICOMweb URL {url!r}: must start with http:// or https:// and name a host")
    return str(url).strip().rstrip("/")


@dataclass(frozen=True)
class Node:
    """One remote node. ``label`` names it in messages."""

    name: str
    ae_title: str = ""
    host: str = ""
    port: int = 0
    dicomweb_url: str = ""
    auth: str = "none"
    username: str = ""
    secret: str = field(default="", repr=False)
    secret_env: str = ""
    verify_tls: bool = True
    ca_bundle: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self):
        if not str(self.name).strip():
            raise SettingsError("a node needs a name")
        if self.ae_title or self.host or self.port:
            object.__setattr__(self, "ae_title", check_ae_title(self.ae_title, f"node {self.name}: AE title"))
            if not str(self.host).strip():
                raise SettingsError(f"node {self.name}: a DIMSE node needs a host")
            object.__setattr__(self, "port", check_port(self.port, f"node {self.name}: port"))
        if self.dicomweb_url:
            object.__setattr__(self, "dicomweb_url", check_url(self.dicomweb_url))
        if not self.is_dimse and not self.is_dicomweb:
            raise SettingsError(f"node {self.name}: give an AE title, host and port (DIMSE) or a DICOMweb URL")
        if self.auth not in AUTH_KINDS:
            raise SettingsError(f"node {self.name}: auth must be one of {', '.join(AUTH_KINDS)}, not {self.auth!r}")
        if self.auth == "basic" and not self.username:
            raise SettingsError(f"node {self.name}: basic authentication needs a username")
        try:
            timeout = float(self.timeout_s)
        except (TypeError, ValueError):
            raise SettingsError(f"node {self.name}: timeout {self.timeout_s!r} is not a number") from None
        if not timeout > 0:
            raise SettingsError(f"node {self.name}: timeout must be positive")
        object.__setattr__(self, "timeout_s", timeout)

    @property
    def is_dimse(self) -> bool:
        return bool(self.ae_title and self.host and self.port)

    @property
    def is_dicomweb(self) -> bool:
        return bool(self.dicomweb_url)

    @property
    def label(self) -> str:
        if self.is_dimse:
            return f"{self.name} ({self.ae_title}@{self.host}:{self.port})"
        return f"{self.name} ({self.dicomweb_url})"

    def resolved_secret(self) -> str:
        """The password or token: from ``secret_env`` when set (an unset variable is an error), else ``secret``."""
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if value is None:
                raise SettingsError(f"node {self.name}: environment variable {self.secret_env} (its secret) is not set")
            return value
        return self.secret

    def to_dict(self) -> dict:
        d = asdict(self)
        defaults = {f.name: f.default for f in fields(Node)}
        return {k: v for k, v in d.items() if k == "name" or v != defaults[k]}

    @classmethod
    def from_dict(cls, d: dict) -> Node:
        if not isinstance(d, dict):
            raise SettingsError(f"a node must be an object, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SettingsError(f"node {d.get('name', '?')}: unknown setting(s) {', '.join(unknown)}")
        return cls(**d)


def parse_aet(text: str, name: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Node:
    """A DIMSE node from ``AE@HOST:PORT`` (``--aet`` on the command line)."""
    m = re.match(r"^([^@]+)@(\[[^\]]+\]|[^:]+):(\d+)$", str(text).strip())
    if not m:
        raise SettingsError(f"{text!r}: expected AE@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
    ae, host, port = m.group(1), m.group(2).strip("[]"), m.group(3)
    return Node(name=name or ae, ae_title=ae, host=host, port=int(port), timeout_s=timeout_s)


@dataclass(frozen=True)
class LocalAE:
    """radview's own AE: the title it calls with and its C-STORE SCP's address (loopback unless configured);
    ``receive``: the SCP runs in the background while the app runs (accepting the configured DIMSE nodes)."""

    ae_title: str = DEFAULT_CALLING_AET
    host: str = "127.0.0.1"
    port: int = DEFAULT_SCP_PORT
    receive: bool = False

    def __post_init__(self):
        if not isinstance(self.receive, bool):
            raise SettingsError(f"local 'receive' must be true or false, not {self.receive!r}")
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title, "local AE title"))
        object.__setattr__(self, "port", check_port(self.port, "local port"))
        object.__setattr__(self, "host", str(self.host).strip())
        if not self.host:
            raise SettingsError("local address: give an address to listen on (127.0.0.1 for this machine only)")

    @property
    def is_loopback_only(self) -> bool:
        return self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("127.")

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def default_path() -> Path:
    env = os.environ.get(ENV_FILE)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("radview")) / "pacs-nodes.json"


@dataclass(frozen=True)
class NodeBook:
    """The nodes and the local AE. Immutable: ``with_node`` / ``without_node`` return a changed copy."""

    nodes: tuple[Node, ...] = ()
    local: LocalAE = LocalAE()

    def __post_init__(self):
        names = [n.name for n in self.nodes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SettingsError(f"node name(s) used twice: {', '.join(dup)}")

    def find(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes) or "none configured"
        raise SettingsError(f"no node named {name!r} (known: {known})")

    def with_node(self, node: Node) -> NodeBook:
        """A copy with ``node`` added, or replacing the node of the same name."""
        kept = tuple(n for n in self.nodes if n.name != node.name)
        return replace(self, nodes=kept + (node,))

    def without_node(self, name: str) -> NodeBook:
        return replace(self, nodes=tuple(n for n in self.nodes if n.name != name))

    def with_local(self, local: LocalAE) -> NodeBook:
        return replace(self, local=local)

    def to_dict(self) -> dict:
        return {"local": asdict(self.local), "nodes": [n.to_dict() for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: dict) -> NodeBook:
        if not isinstance(d, dict):
            raise SettingsError("the node settings must be a JSON object")
        local = d.get("local") or {}
        if not isinstance(local, dict):
            raise SettingsError("'local' must be an object")
        nodes = d.get("nodes") or []
        if not isinstance(nodes, list):
            raise SettingsError("'nodes' must be a list")
        return cls(nodes=tuple(Node.from_dict(n) for n in nodes), local=LocalAE(**local))


def load_nodes(path: str | os.PathLike | None = None) -> NodeBook:
    """The settings at ``path`` (default :func:`default_path`); an absent file is an empty book."""
    p = Path(path) if path is not None else default_path()
    if not p.exists():
        return NodeBook()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{p}: not readable JSON ({exc})") from exc
    try:
        return NodeBook.from_dict(data)
    except TypeError as exc:  # an unknown key of 'local'
        raise SettingsError(f"{p}: {exc}") from exc
    except SettingsError as exc:
        raise SettingsError(f"{p}: {exc}") from exc


def save_nodes(book: NodeBook, path: str | os.PathLike | None = None) -> Path:
    """Write ``book`` atomically, readable by the user only (it may hold secrets)."""
    p = Path(path) if path is not None else default_path()
    text = json.dumps(book.to_dict(), indent=2, ensure_ascii=False) + "\n"
    with atomic_path(p, mode=0o600) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    return p
