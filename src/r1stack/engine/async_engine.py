"""AsyncEngine: the LLMEngine driven by a background thread, with asyncio streams per request.

The event loop never runs model code: requests and aborts are queued to the step thread, outputs come back through
call_soon_threadsafe. A client that goes away closes its generator, which aborts the request; its blocks are freed
at the start of the next step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import AsyncIterator

from r1stack.engine.chat import render_chat
from r1stack.engine.config import EngineArgs
from r1stack.engine.llm_engine import EngineStats, LLMEngine
from r1stack.engine.outputs import RequestOutput
from r1stack.engine.sampling_params import SamplingParams
from r1stack.errors import UserError

log = logging.getLogger("r1stack.engine")


class EngineDeadError(RuntimeError):
    pass


class AsyncEngine:
    def __init__(self, args: EngineArgs):
        if args.threads is None:
            # OpenMP threads that share their cores with the event loop stall at every barrier (we measured a
            # 30x slower matmul); like vLLM's CPU backend, leave one core to the server.
            args.threads = max(1, (os.cpu_count() or 2) - 1)
        self.engine = LLMEngine(args)
        self.tokenizer = self.engine.tokenizer
        self.model_info = self.engine.model_info
        self.dead_error: BaseException | None = None
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._streams: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._stats = self.engine.stats()
        self._thread: threading.Thread | None = None
        self._stop = False

    async def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="r1stack-engine", daemon=True)
            self._thread.start()

    async def shutdown(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True, **kwargs) -> str:
        return render_chat(self.tokenizer, messages, add_generation_prompt=add_generation_prompt, **kwargs)

    def stats(self) -> EngineStats:
        return self._stats

    async def generate(
        self,
        prompt: str | None,
        params: SamplingParams,
        request_id: str,
        prompt_token_ids: list[int] | None = None,
    ) -> AsyncIterator[RequestOutput]:
        if self.dead_error is not None:
            raise EngineDeadError(f"the engine has stopped: {self.dead_error}")
        if prompt_token_ids is None:
            prompt_token_ids = self.engine.tokenize(prompt or "")
        self.engine.check_prompt(prompt_token_ids)  # raises UserError here, in the caller's context
        stream: asyncio.Queue = asyncio.Queue()
        self._streams[request_id] = (asyncio.get_running_loop(), stream)
        self._send(("add", request_id, prompt, params, prompt_token_ids))
        finished = False
        try:
            while True:
                item = await stream.get()
                if isinstance(item, UserError):
                    raise item
                if isinstance(item, BaseException):
                    raise EngineDeadError(f"the engine has stopped: {item}") from item
                yield item
                if item.finished:
                    finished = True
                    return
        finally:
            self._streams.pop(request_id, None)
            if not finished:
                self._send(("abort", request_id))

    async def abort(self, request_id: str) -> None:
        self._send(("abort", request_id))

    def _send(self, command: tuple) -> None:
        self._commands.put(command)
        self._wake.set()

    # ---- the step thread ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stop:
                self._drain_commands()
                if not self.engine.has_unfinished():
                    self._stats = self.engine.stats()
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                outputs = self.engine.step()
                self._stats = self.engine.stats()
                for out in outputs:
                    self._deliver(out.request_id, out)
        except BaseException as e:  # the engine is dead: every waiting client hears why
            log.exception("engine step loop died")
            self.dead_error = e
            for rid in list(self._streams):
                self._deliver(rid, e)

    def _drain_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            if cmd[0] == "add":
                _, rid, prompt, params, ids = cmd
                try:
                    self.engine.add_request(rid, prompt, params, prompt_token_ids=ids)
                except Exception as e:
                    self._deliver(rid, e)
            else:
                self.engine.abort(cmd[1])

    def _deliver(self, request_id: str, item) -> None:
        target = self._streams.get(request_id)
        if target is not None:
            loop, stream = target
            loop.call_soon_threadsafe(stream.put_nowait, item)
