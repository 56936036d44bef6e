"""The model: one chat-completion call with tools, metered by the usage the API reports.

`Model` is the protocol the agent loop talks to; `OpenAIModel` implements it with the real
`openai` SDK (any OpenAI-compatible endpoint). SDK failures become `ModelError` with a hint
the user can act on; the SDK's own retry (429, 5xx, connection errors, Retry-After) stays in
charge of retrying, so by the time we see an error the retries are spent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, TYPE_CHECKING, Any, Protocol, TypeGuard

from orchestrator.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import httpx2
    import openai


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; `arguments` is the raw JSON text it sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens the API says it billed for one call."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Completion:
    """One answer from the model."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish_reason: str | None

    def assistant_message(self) -> dict[str, Any]:
        """The message to append to the chat history, in OpenAI wire form."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


class Model(Protocol):
    """What the agent loop needs from a model."""

    name: str
    max_output_tokens: int

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        """Send the conversation, return the answer; raises ModelError."""
        ...


class OpenAIModel:
    """A chat-completions model behind the real `openai` client."""

    def __init__(
        self,
        name: str,
        *,
        api_key: str,
        base_url: str | None = None,
        max_output_tokens: int = 4096,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        stream: bool = False,
        http_client: httpx2.Client | None = None,
        on_http_error: Callable[[int, str | None], None] | None = None,
    ) -> None:
        import openai  # lazily: the CLI must start without loading the SDK

        if max_output_tokens <= 0:
            raise ValueError("max_output_tokens must be positive")
        self.name = name
        self.max_output_tokens = max_output_tokens
        self.stream = stream
        if not api_key:
            raise ConfigError(f"no API key for model {name}", hint="set OPENAI_API_KEY")
        if http_client is None and on_http_error is not None:
            # The SDK retries 429/5xx by itself; a response hook makes every such answer visible.
            def report(response: httpx2.Response) -> None:
                if response.status_code == 429 or response.status_code >= 500:
                    on_http_error(response.status_code, response.headers.get("retry-after"))

            http_client = openai.DefaultHttpxClient(event_hooks={"response": [report]})
        # base_url=None lets the SDK fall back to OPENAI_BASE_URL, then api.openai.com.
        try:
            self._client = openai.OpenAI(
                api_key=api_key,
                base_url=base_url,
                timeout=timeout_s,
                max_retries=max_retries,
                http_client=http_client,
            )
        except openai.OpenAIError as exc:
            raise ConfigError(f"cannot set up the client for model {name}: {exc}", hint="check OPENAI_BASE_URL") from exc
        self.base_url = str(self._client.base_url).rstrip("/")
        self._token_limit_param = "max_completion_tokens"
        self._token_limit_switched = False

    def preflight(self) -> None:
        """Check, at no token cost, that the endpoint answers and accepts the key (GET /models).

        An endpoint without a models list (404) passes: only an unreachable endpoint or a
        refused key stops a run before it starts.
        """
        import httpx2
        import openai

        try:
            self._client.with_options(max_retries=0, timeout=10.0).models.list()
        except openai.NotFoundError:
            return
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        except httpx2.TransportError as exc:
            raise ModelError(f"model endpoint {self.base_url} is unreachable: {exc}",
                             hint="check OPENAI_BASE_URL") from exc

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        """Send the conversation with the tools; raises ModelError with a hint."""
        import httpx2
        import openai

        try:
            try:
                return self._call(messages, tools)
            except openai.BadRequestError as exc:
                if not self._switch_token_limit(exc):
                    raise
                return self._call(messages, tools)
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        except httpx2.TransportError as exc:
            # Not retried by the SDK: the answer broke off mid-way (and was probably billed).
            raise ModelError(
                f"the connection to model {self.name} at {self.base_url} broke mid-answer: {type(exc).__name__}",
                hint="the endpoint or the network dropped the answer; the call counts as spent",
            ) from exc
        except ValueError as exc:  # JSON that does not parse, events that are not JSON
            raise self._malformed(f"unreadable response ({exc})") from exc

    def _call(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        if self.stream:
            return self._complete_streaming(messages, tools)
        return self._complete_once(messages, tools)

    def _switch_token_limit(self, exc: Any) -> bool:
        """Switch max_completion_tokens <-> max_tokens once if the server named ours as unsupported.

        OpenAI's newer models only take max_completion_tokens; some compatible servers only
        take max_tokens. Either way the output stays capped, which the budget relies on.
        """
        if self._token_limit_switched or self._token_limit_param not in str(getattr(exc, "message", "")):
            return False
        self._token_limit_switched = True
        other = "max_tokens" if self._token_limit_param == "max_completion_tokens" else "max_completion_tokens"
        self._token_limit_param = other
        return True

    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        # The output cap is what makes the ledger's worst case an upper bound, so it is always sent.
        request: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            self._token_limit_param: self.max_output_tokens,
        }
        if tools:
            request["tools"] = tools
        return request

    def _complete_once(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        response: Any = self._client.chat.completions.create(**self._request(messages, tools))
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise self._malformed("the response has no choices")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise self._malformed("the response has no message")
        calls = tuple(_tool_call_from(raw) for raw in (getattr(message, "tool_calls", None) or []))
        content = getattr(message, "content", None)
        return Completion(
            content=content if isinstance(content, str) else None,
            tool_calls=calls,
            usage=self._usage(getattr(response, "usage", None)),
            finish_reason=getattr(choice, "finish_reason", None),
        )

    def _complete_streaming(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        request = self._request(messages, tools)
        stream: Any = self._client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        assembly = _StreamAssembly()
        with stream:
            for chunk in stream:
                assembly.add(chunk)
        if not assembly.chunks:
            raise self._malformed("the stream carried no events")
        if assembly.finish_reason is None and assembly.usage is None:
            raise ModelError(
                f"the answer of model {self.name} at {self.base_url} broke off mid-stream",
                hint="the endpoint or the network dropped the answer; the call counts as spent",
            )
        return Completion(
            content=assembly.content(),
            tool_calls=assembly.tool_calls(),
            usage=self._usage(assembly.usage),
            finish_reason=assembly.finish_reason,
        )

    def _usage(self, usage: Any) -> Usage:
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if not _is_count(prompt) or not _is_count(completion):
            raise ModelError(
                f"model {self.name} at {self.base_url} reported no token usage",
                hint="the call cannot be metered against the budget; use an endpoint that "
                "returns `usage` (for streaming: stream_options.include_usage)",
            )
        return Usage(prompt_tokens=prompt, completion_tokens=completion)

    def _malformed(self, what: str) -> ModelError:
        return ModelError(
            f"malformed answer from model {self.name} at {self.base_url}: {what}",
            hint="the endpoint is not speaking the OpenAI chat-completions API; check OPENAI_BASE_URL",
        )

    def _translate(self, exc: openai.OpenAIError) -> ModelError:
        return translate_error(exc, model=self.name, base_url=self.base_url)


def translate_error(exc: openai.OpenAIError, *, model: str, base_url: str) -> ModelError:
    """Turn an SDK error (after the SDK's retries) into a ModelError with a hint."""
    import openai

    where = f"model {model} at {base_url}"
    if isinstance(exc, openai.APITimeoutError):
        return ModelError(f"{where} timed out", hint="the endpoint is slow or stuck; retry later or raise the timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(
            f"model endpoint unreachable (or it dropped the connection): {base_url}",
            hint="check OPENAI_BASE_URL (or --base-url) and that the server is running",
        )
    if isinstance(exc, openai.APIStatusError):
        return _translate_status(exc, where)
    if isinstance(exc, openai.APIResponseValidationError):
        return ModelError(f"{where} returned data the SDK could not read", hint="check OPENAI_BASE_URL")
    return ModelError(f"{where} failed: {exc}", hint="check OPENAI_BASE_URL and the model name")


def _translate_status(exc: Any, where: str) -> ModelError:
    status: int = exc.status_code
    detail = _error_detail(exc)
    if status in (401, 403):
        return ModelError(f"{where} refused the API key (HTTP {status}){detail}", hint="check OPENAI_API_KEY")
    if status == 404:
        return ModelError(
            f"{where} not found (HTTP 404){detail}",
            hint="check the model name and that OPENAI_BASE_URL ends in /v1",
        )
    if status == 429:
        return ModelError(
            f"{where} is rate limited (HTTP 429) after retries{detail}",
            hint="lower the number of parallel agents or wait; check the account's quota",
        )
    if status >= 500:
        return ModelError(f"{where} failed with HTTP {status} after retries{detail}", hint="the provider is having trouble; retry later")
    return ModelError(f"{where} rejected the request (HTTP {status}){detail}", hint="check the model name and its parameters")


def _error_detail(exc: Any) -> str:
    message = getattr(exc, "message", "")
    if not isinstance(message, str) or not message:
        return ""
    return ": " + message[:300]


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tool_call_from(raw: Any) -> ToolCall:
    function = getattr(raw, "function", None)
    name = getattr(function, "name", None)
    arguments = getattr(function, "arguments", None)
    return ToolCall(
        id=str(getattr(raw, "id", "") or ""),
        name=name if isinstance(name, str) else "",
        arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
    )


class _StreamAssembly:
    """Collects streamed chunks: content pieces, tool calls by index, the usage chunk."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.finish_reason: str | None = None
        self.chunks = 0

    def add(self, chunk: Any) -> None:
        self.chunks += 1
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) != 0:
                continue
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                self._content.append(delta.content)
            for piece in delta.tool_calls or []:
                self._add_call_piece(piece)

    def _add_call_piece(self, piece: Any) -> None:
        call = self._calls.setdefault(piece.index, {"id": "", "name": "", "arguments": []})
        if piece.id:
            call["id"] = piece.id
        function = piece.function
        if function is not None:
            if function.name:
                call["name"] += function.name
            if function.arguments:
                call["arguments"].append(function.arguments)

    def content(self) -> str | None:
        return "".join(self._content) if self._content else None

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=call["id"], name=call["name"], arguments="".join(call["arguments"]))
            for _, call in sorted(self._calls.items())
        )


def _conforms(model: OpenAIModel) -> Model:
    return model  # mypy fails here if OpenAIModel drifts from the protocol
