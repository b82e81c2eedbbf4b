"""The HTTP side of a DICOMweb node: a requests session with its credentials and TLS settings, the dicomweb-client
client on it, and HTTP failures told in words.

Authentication: ``basic`` (username and password) or ``bearer`` (a token in the ``Authorization`` header); the secret
comes from the node (``Node.resolved_secret``). TLS certificates are verified by default (``verify_tls``; a
``ca_bundle`` adds the certificates to trust). :func:`web_errors` turns requests' exceptions into
:class:`~viewer.net.errors.NetError` subclasses: refused, timed out, a certificate that does not verify, 401/403.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from viewer.net.errors import AuthFailed, ConnectFailed, NetError, NetTimeout, RequestFailed
from viewer.net.nodes import Node


def make_session(node: Node):
    """A ``requests.Session`` for ``node``: auth header or basic credentials, TLS verification on."""
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = "radview"
    if node.auth == "basic":
        session.auth = (node.username, node.resolved_secret())
    elif node.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {node.resolved_secret()}"
    session.verify = node.ca_bundle if (node.verify_tls and node.ca_bundle) else bool(node.verify_tls)
    return session


def make_client(node: Node):
    from dicomweb_client.api import DICOMwebClient

    if not node.is_dicomweb:
        raise NetError(f"node {node.name} has no DICOMweb URL")
    client = DICOMwebClient(node.dicomweb_url, session=make_session(node), timeout=node.timeout_s)
    # dicomweb-client retries every failed request (a refused connection too) five times with exponential waits
    # (1 s, 2 s, 4 s, …): a failure must come back within the node's timeout, so it is reported at once instead
    client.set_http_retry_params(retry=False)
    return client


@contextmanager
def web_errors(node: Node, what: str) -> Iterator[None]:
    """Inside, requests' exceptions become NetErrors that name the node and what was being done."""
    import requests

    where = node.dicomweb_url
    try:
        yield
    except NetError:
        raise
    except requests.exceptions.SSLError as exc:
        raise ConnectFailed(f"{node.label}: {what}: the TLS certificate of {where} did not verify ({exc}); give the "
                            f"node a CA bundle if it uses a private certificate authority") from exc
    except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout) as exc:
        raise NetTimeout(f"{node.label}: {what}: no answer from {where} within {node.timeout_s:g} s") from exc
    except requests.exceptions.ConnectionError as exc:
        raise ConnectFailed(f"{node.label}: {what}: cannot connect to {where} (refused or unreachable: "
                            f"{_root_cause(exc)})") from exc
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        reason = exc.response.reason if exc.response is not None else str(exc)
        if code in (401, 403):
            raise AuthFailed(f"{node.label}: {what}: HTTP {code} {reason} — check the node's credentials") from exc
        raise RequestFailed(f"{node.label}: {what}: HTTP {code} {reason}") from exc
    except requests.exceptions.RequestException as exc:
        raise RequestFailed(f"{node.label}: {what}: {exc}") from exc


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc)
    return text.split(": ", 1)[-1] if "Errno" in text else text
