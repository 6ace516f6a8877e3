"""A scripted OpenAI-compatible upstream on a real loopback socket: it streams a set answer, and on demand fails
the ways real replicas fail (500, refused, hung, cut mid-stream, malformed JSON), recording what it was sent."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "standin-r1"


class StandIn:
    """mode: ok | 500 | hang | cut_before | cut_mid | malformed | down (health fails too).
    answer: the content it streams; reasoning: sent apart as reasoning_content when set."""

    def __init__(self, name: str, answer: str = "Hello from the stand-in.", chunk_delay_s: float = 0.0):
        self.name = name
        self.mode = "ok"
        self.answer = answer
        self.reasoning: str | None = None
        self.chunk_delay_s = chunk_delay_s
        self.requests: list[dict] = []  # bodies of generation requests, in arrival order
        self.disconnects = 0  # streams whose client went away before the end
        self.in_flight = 0
        self.required_key: str | None = None  # set: requests must carry it as a bearer token
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _key_ok(self) -> bool:
                want = standin.required_key
                if want and self.headers.get("Authorization") != f"Bearer {want}":
                    self._json(401, {"error": {"message": "bad key", "type": "authentication_error"}})
                    return False
                return True

            def do_GET(self):  # noqa: N802 (http.server's name)
                if not self._key_ok():
                    return
                if standin.mode == "down":
                    return self._json(503, {"error": {"message": "down for maintenance"}})
                self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if not self._key_ok():
                    return
                with standin._lock:
                    standin.requests.append(body)
                    standin.in_flight += 1
                try:
                    standin.serve(self, body)
                finally:
                    with standin._lock:
                        standin.in_flight -= 1

            def _json(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.handler = Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- one generation request ----------------------------------------------------------------------------------

    def pieces(self) -> list[tuple[str, str]]:
        """(field, text) deltas: the reasoning (if sent apart) and the answer, a few characters at a time."""
        out = []
        if self.reasoning:
            out += [
                ("reasoning_content", self.reasoning[i : i + 5]) for i in range(0, len(self.reasoning), 5)
            ]
        out += [("content", self.answer[i : i + 3]) for i in range(0, len(self.answer), 3)]
        return out

    def serve(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        mode = self.mode
        if mode in ("500", "down"):
            return h._json(
                500, {"error": {"message": "internal error in the stand-in", "type": "server_error"}}
            )
        if body.get("model") != MODEL:
            return h._json(404, {"error": {"message": f"model {body.get('model')} not found"}})
        if mode == "hang":
            time.sleep(30)
            return
        if mode == "cut_before":
            h.close_connection = True
            h.connection.shutdown(2)  # hang up without answering
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chat = "messages" in body

        def send(obj) -> None:
            data = (obj if isinstance(obj, str) else "data: " + json.dumps(obj)) + "\n\n"
            raw = data.encode()
            h.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            h.wfile.flush()

        def chunk(field: str | None, text: str, finish: str | None = None) -> dict:
            if chat:
                delta = {field: text} if field else {}
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                obj = "chat.completion.chunk"
            else:
                choice = {"index": 0, "text": text, "finish_reason": finish}
                obj = "text_completion"
            return {"id": "x", "object": obj, "created": 0, "model": MODEL, "choices": [choice]}

        try:
            if chat:
                send(chunk("role", "assistant"))
            pieces = self.pieces()
            for n, (field, text) in enumerate(pieces):
                if mode == "cut_mid" and n == 3:
                    h.close_connection = True
                    h.connection.shutdown(2)
                    return
                if mode == "malformed" and n == 0:
                    send("data: {not json")
                send(chunk(field if chat else None, text))
                if self.chunk_delay_s:
                    time.sleep(self.chunk_delay_s)
            send(chunk(None, "", "stop"))
            n_out = len(pieces)
            send({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "choices": [],
                  "usage": {"prompt_tokens": 7, "completion_tokens": n_out, "total_tokens": 7 + n_out}})  # fmt: skip
            send("data: [DONE]")
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            with self._lock:
                self.disconnects += 1
