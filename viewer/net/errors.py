"""What can go wrong talking to a node, each as its own exception with a message a user can act on.

:class:`NetError` is the base the GUI and the CLI catch; its subclasses say which of the usual failures it was
(nothing listening, no answer in time, the association refused, a request answered with a failure status, the
server refusing our credentials). A partial retrieve is not an exception: it is a result that lists what arrived
and what did not (``viewer.net.records.RetrieveResult``).
"""
from __future__ import annotations


class NetError(Exception):
    """A network operation failed; the message names the node and what to check."""


class ConnectFailed(NetError):
    """Nothing accepted the connection (refused, unreachable host, unknown name)."""


class NetTimeout(NetError):
    """The node did not answer within the timeout."""


class AssociationRejected(NetError):
    """The node refused the DICOM association (unknown AE title, no accepted presentation context, busy)."""


class ContextsRejected(AssociationRejected):
    """The node accepted none of the proposed presentation contexts (SOP classes / transfer syntaxes)."""


class RequestFailed(NetError):
    """The node answered a request with a failure (a DIMSE failure status, an HTTP error)."""


class AuthFailed(RequestFailed):
    """The node refused the credentials (HTTP 401/403)."""


class SettingsError(ValueError):
    """A node or local-AE setting is invalid (the message says which and why)."""
