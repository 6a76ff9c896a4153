"""LLM providers behind one interface; an OpenAI-compatible chat client is the first.

Token usage comes from the response's ``usage`` field; the caller prices it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from codequal.exceptions import AnalysisError


class ProviderError(AnalysisError):
    """The provider could not answer; the message says what went wrong."""

    error_type = "llm_provider"


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int


class LLMProvider(Protocol):
    name: str
    model: str

    def complete(self, system: str, prompt: str, *, max_tokens: int = 600) -> Completion: ...


class OpenAICompatible:
    """``POST {base_url}/chat/completions`` as OpenAI, vLLM, Ollama and others speak it."""

    name = "openai-compatible"

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0
    ) -> None:
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def complete(self, system: str, prompt: str, *, max_tokens: int = 600) -> Completion:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt},
            ],
            "max_tokens": max_tokens,
            "temperature": 0.2,
        }
        try:
            response = self._client.post("/chat/completions", json=body)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            usage = data.get("usage") or {}
            return Completion(
                text=str(data["choices"][0]["message"]["content"]),
                model=str(data.get("model") or self.model),
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
            )
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(f"LLM provider call failed: {exc}") from exc

    def close(self) -> None:
        self._client.close()
