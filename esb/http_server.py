"""The bus's HTTP server: waitress serving the Flask app on a background thread."""

from __future__ import annotations

import threading

from flask import Flask


class HttpServer:
    """waitress serving `app` on a background thread; `port=0` picks a free port."""

    def __init__(self, app: Flask, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 16):
        from waitress.server import create_server

        self._server = create_server(app, host=host, port=port, threads=threads,
                                     clear_untrusted_proxy_headers=True)
        self.host = host
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._server.run, name="esb-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close the open (kept-alive) connections, let running requests finish.

        The sockets are closed on the server's own loop thread: closing them from here while the
        loop waits in select() makes it fail with EBADF."""

        def close_everything() -> None:
            for channel in list(self._server._map.values()):
                if channel is not self._server and channel is not self._server.trigger:
                    channel.close()
            self._server.close()  # the listening socket and the trigger; the loop then ends

        if self._thread.is_alive():
            self._server.trigger.pull_trigger(close_everything)
            self._thread.join(timeout=5)
        else:
            self._server.close()
        self._server.task_dispatcher.shutdown()
