"""
A TCP proxy on loopback that tests put between the driver and the simulator,
to stall, trickle or drop the connections as a failing network or vCenter
would.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import select
import socket
import threading

__all__ = ["TCPProxy"]


class TCPProxy(object):
    """
    Forwards connections made to ``127.0.0.1:port`` to ``target``.

    :ivar int port: Where it listens.
    """

    def __init__(self, target_host, target_port):
        self._target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs = []
        self._stalled = threading.Event()
        # (bytes, seconds) while answers trickle, else None.
        self._trickle = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy")
        self._thread.daemon = True
        self._thread.start()

    def stall(self):
        """Stop forwarding: requests go unanswered, as from a hung vCenter."""
        self._stalled.set()

    def trickle(self, size=64, interval=0.1):
        """
        Forward the server's answers ``size`` bytes every ``interval``
        seconds: each read is answered in time, the whole answer never.
        """
        self._trickle = (size, interval)

    def resume(self):
        """Forward again, at full speed."""
        self._trickle = None
        self._stalled.clear()

    def drop_connections(self):
        """Close every open connection, as a restarted proxy or NAT would."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _close(sock)

    def close(self):
        """Stop listening and drop everything."""
        self._closed.set()
        _close(self._listener)
        self.drop_connections()
        self._thread.join(5)

    def _accept(self):
        while not self._closed.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], 0.2)
                if not readable:
                    continue
                client, _ = self._listener.accept()
            except (socket.error, ValueError):
                return
            try:
                server = socket.create_connection(self._target, timeout=5)
            except socket.error:
                _close(client)
                continue
            with self._lock:
                self._pairs.append((client, server))
            thread = threading.Thread(target=self._pump, args=(client, server))
            thread.daemon = True
            thread.start()

    def _pump(self, client, server):
        peers = {client: server, server: client}
        try:
            while not self._closed.is_set():
                if self._stalled.is_set():
                    self._closed.wait(0.05)
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    trickle = self._trickle if sock is server else None
                    if trickle is None:
                        peers[sock].sendall(data)
                        continue
                    size, interval = trickle
                    for start in range(0, len(data), size):
                        client.sendall(data[start:start + size])
                        if self._closed.wait(interval):
                            return
        except (socket.error, select.error, ValueError):
            # A connection dropped under select (Python 2.7 says so with
            # select.error, not socket.error).
            return
        finally:
            _close(client)
            _close(server)


def _close(sock):
    try:
        sock.close()
    except socket.error:
        pass
