"""
One HTTPS connection to vCenter: its TLS checks (the pinned fingerprint),
its deadline (the operation timeout bounds a whole call, not each read),
and what a network or TLS failure is called.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import hashlib
import io
import socket
import ssl
import threading
from xml.parsers.expat import ExpatError

from pyVmomi import SoapAdapter

from ._compat import PY2, http_client, monotonic, native_string, text_type
from .tls import ssl_context

#: An answer cut off by a dropped connection does not parse: pyVmomi says
#: so with expat's error, or (its releases for Python 2.7) with its own.
ANSWER_ERRORS = (ExpatError,) + tuple(
    error for error in [getattr(SoapAdapter, "ParserError", None)] if error)

#: Errors of the network or TLS below SOAP: vCenter is not reachable, or
#: its answer did not arrive whole.
NETWORK_ERRORS = (socket.error, ssl.SSLError, ssl.CertificateError,
                  http_client.HTTPException) + ANSWER_ERRORS

# OpenSSL's verification result for a certificate of another host.
_X509_V_ERR_HOSTNAME_MISMATCH = 62


class CertificateMismatch(ssl.SSLError):
    """
    The server's certificate does not have the pinned fingerprint.

    :ivar text seen: The fingerprint it has.
    """

    def __init__(self, seen):
        ssl.SSLError.__init__(
            self, "the server's certificate fingerprint is {}, not the "
                  "configured ssl_thumbprint".format(seen))
        self.seen = seen


def _pinned_connection(base, fingerprint):
    """
    An HTTPS connection class that accepts only a certificate whose SHA-256
    (64 hex digits) or SHA-1 (40) fingerprint is ``fingerprint``.

    Checked on the connection that carries the requests, right after the
    handshake, so no other connection can be substituted.
    """
    digest = hashlib.sha256 if len(fingerprint) == 64 else hashlib.sha1

    class PinnedHTTPSConnection(base):
        def connect(self):
            base.connect(self)
            seen = digest(self.sock.getpeercert(True)).hexdigest()
            if seen != fingerprint:
                self.close()
                raise CertificateMismatch(seen)
    return PinnedHTTPSConnection


# The deadline of the vCenter call in progress on each thread.
_DEADLINES = threading.local()


class Deadline(object):
    """
    When the vCenter call in progress on this thread must be over: its
    sockets' reads and writes are bounded by it (``_DeadlineSocket``).

    Python 3 bounds a TLS read by its timeout as a whole; Python 2.7 only
    each wait for more bytes within it, so a trickled answer could hold one
    read for ever: there, a timer shuts the call's sockets down when the
    deadline passes.

    :ivar bool expired: The timer shut the sockets down.
    """

    def __init__(self, seconds):
        self.at = monotonic() + seconds
        self.expired = False
        self._sockets = []
        self._timer = None
        self._previous = None

    def __enter__(self):
        self._previous = getattr(_DEADLINES, "current", None)
        _DEADLINES.current = self
        return self

    def __exit__(self, *exc_info):
        _DEADLINES.current = self._previous
        if self._timer is not None:
            self._timer.cancel()

    def watch(self, sock):
        """Shut ``sock`` down when the deadline passes (Python 2.7)."""
        if not PY2 or sock in self._sockets:
            return
        self._sockets.append(sock)
        if self._timer is None:
            self._timer = threading.Timer(max(0, self.at - monotonic()),
                                          self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self):
        self.expired = True
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except socket.error:
                pass  # closed already: nothing left to wait for


class _DeadlineSocket(object):
    """
    A connected socket each of whose reads and writes ends by the deadline
    of the call in progress (``Deadline``): the socket's own timeout bounds
    each read alone, so a vCenter that trickles its answer in small pieces
    could stretch one call far past the operation timeout.
    """

    def __init__(self, sock):
        self._sock = sock

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def _arm(self):
        deadline = getattr(_DEADLINES, "current", None)
        if deadline is None:
            return
        remaining = deadline.at - monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self._sock.settimeout(remaining)
        deadline.watch(self._sock)

    def recv(self, *args):
        self._arm()
        return self._sock.recv(*args)

    def recv_into(self, *args):
        self._arm()
        return self._sock.recv_into(*args)

    def send(self, *args):
        self._arm()
        return self._sock.send(*args)

    def sendall(self, *args):
        self._arm()
        return self._sock.sendall(*args)

    def makefile(self, mode="rb", bufsize=-1):
        """A file reading through this socket, as ``http_client`` reads."""
        if PY2:  # pragma: no cover - exercised by the Python 2.7 test run
            return socket._fileobject(self, mode, bufsize)
        return io.BufferedReader(socket.SocketIO(self, "rb"))


def connection_class(base, config):
    """
    The HTTPS connection class of every request: ``base``, its socket
    bounded by the call's deadline, and the pinned fingerprint checked when
    ``ssl_thumbprint`` is set.
    """
    class DeadlineHTTPSConnection(base):
        def connect(self):
            base.connect(self)
            self.sock = _DeadlineSocket(self.sock)
    if config.ssl_thumbprint is None:
        return DeadlineHTTPSConnection
    return _pinned_connection(DeadlineHTTPSConnection, config.ssl_thumbprint)


def tls_handshake(config, timeout):
    """
    Open one TLS connection to vCenter as the session opens its own (the
    same context, the same pinned fingerprint), then close it: the
    operator's certificate check, with the session's own verdict.

    :raises CertificateMismatch: the pinned fingerprint does not match.
    :raises ssl.SSLError: the certificate is not trusted (or another TLS
        failure).
    :raises ssl.CertificateError: it names another host (Python 2.7).
    """
    scheme = http_client.HTTPSConnection
    if config.ssl_thumbprint is not None:
        scheme = _pinned_connection(scheme, config.ssl_thumbprint)
    connection = scheme(native_string(config.vc_host), config.vc_port,
                        timeout=timeout, context=ssl_context(config))
    try:
        connection.connect()
    finally:
        connection.close()


def server_fingerprint(config, timeout, algorithm="sha256"):
    """
    The fingerprint of vCenter's certificate, read without verifying it:
    what an operator would pin with ``ssl_thumbprint``.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = socket.create_connection((config.vc_host, config.vc_port),
                                          timeout=timeout)
    try:
        wrapped = context.wrap_socket(connection)
        try:
            return hashlib.new(algorithm, wrapped.getpeercert(True)).hexdigest()
        finally:
            wrapped.close()
    finally:
        connection.close()


def is_timeout(error):
    """
    Whether ``error`` is the operation timeout running out (Python 2.7
    reports a TLS handshake that timed out as a plain ``SSLError``).
    """
    return isinstance(error, socket.timeout) or (
        isinstance(error, ssl.SSLError) and "timed out" in text_type(error))


def _is_name_mismatch(error):
    """
    Whether the certificate is fine but names another host: Python 2.7 says
    so with a ``CertificateError`` of its own, Python 3 with OpenSSL's code.
    """
    if getattr(error, "verify_code", None) == _X509_V_ERR_HOSTNAME_MISMATCH:
        return True
    return (isinstance(error, ssl.CertificateError)
            and not isinstance(error, ssl.SSLError))


def describe_network_error(error):
    if isinstance(error, CertificateMismatch):
        return text_type(error.args[0] if error.args else error)
    if is_timeout(error):
        return "no answer within the operation timeout"
    if _is_name_mismatch(error):
        return ("its certificate is not valid for this host name or address "
                "({}); set vc_ip to a name the certificate carries".format(
                    getattr(error, "verify_message", None) or error))
    if isinstance(error, ssl.SSLError):
        return ("the TLS handshake failed ({}); if vCenter uses a self-signed "
                "certificate, set ssl_ca_file or ssl_thumbprint".format(
                    getattr(error, "reason", None) or error))
    if isinstance(error, ANSWER_ERRORS):
        return "its answer was cut off or garbled ({})".format(
            type(error).__name__)
    return "cannot connect ({})".format(
        getattr(error, "strerror", None) or type(error).__name__)
