"""loopback - what the AWS fakes share: a threaded HTTP server on loopback,
started and stopped by the fake that owns it. Standard library only."""

import http.server
import threading


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class ServedFake:
    """start()/stop()/with for a fake with self.host and self.port: serves
    HANDLER, whose OWNER attribute points back at the fake."""

    HANDLER = None        # a BaseHTTPRequestHandler subclass
    OWNER = "fake"        # the handler's attribute naming the fake
    THREAD_NAME = "fake"

    _server = None
    _thread = None
    url = None

    def start(self):
        handler = type("Handler", (self.HANDLER,), {self.OWNER: self})
        self._server = Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self.url = "http://%s:%d" % (self.host, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, name=self.THREAD_NAME,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread:
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
