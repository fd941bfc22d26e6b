"""Which LM a judge calls: the `lm` section with `judges.lm` on top, the embedded model by default.

MLflow judges name their model by URI (`openai:/gpt-4o-mini`) and reach an OpenAI-compatible
server through `base_url` (the full chat-completions URL for the providers MLflow calls itself)
and `extra_headers`. The embedded llama.cpp server is such a server, on loopback with a random
per-process key, so an embedded judge is `openai:/<name>` at `<server>/v1/chat/completions` with
that key in the Authorization header: make_judge reaches it offline, no wrapper needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from agent.config import LMSettings, Settings

_CHAT_PATH = "/chat/completions"


class JudgeModelError(ValueError):
    pass


@dataclass(frozen=True)
class JudgeModel:
    uri: str  # MLflow's model URI, provider:/name
    lm: LMSettings  # the settings it came from (SIMBA's rule LM is built from them)
    base_url: str | None = None
    extra_headers: dict[str, str] | None = field(default=None, repr=False)  # may hold a key

    def inference_params(self, temperature: float | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.lm.temperature if temperature is None else temperature}
        if self.lm.max_tokens:
            params["max_tokens"] = self.lm.max_tokens
        return params

    def judge_kwargs(self, temperature: float | None = None) -> dict[str, Any]:
        """make_judge's connection arguments."""
        return {
            "model": self.uri,
            "base_url": self.base_url,
            "extra_headers": self.extra_headers,
            "inference_params": self.inference_params(temperature),
        }


def judge_lm_settings(settings: Settings, model: str | None = None) -> LMSettings:
    lm = settings.lm.overridden(settings.judges.lm)
    return lm.model_copy(update={"model": model}) if model else lm


def resolve(settings: Settings, model: str | None = None) -> JudgeModel:
    """The judges' model; an embedded one is started (or reused) here."""
    from agent.lm.embedded import embedded_name, get_server

    lm = judge_lm_settings(settings, model)
    name = embedded_name(lm.model)
    if name is not None:
        server = get_server(name, settings.embedded)
        # MLflow's openai provider will not build without OPENAI_API_KEY, although the request sends
        # the Authorization header given here instead. The placeholder is never sent anywhere.
        os.environ.setdefault("OPENAI_API_KEY", "sqlagent-embedded-judge")
        return JudgeModel(
            uri=f"openai:/{name}",
            lm=lm,
            base_url=server.base_url + "/v1" + _CHAT_PATH,
            extra_headers={"Authorization": f"Bearer {server.api_key}"},
        )
    return hosted(lm)


def hosted(lm: LMSettings) -> JudgeModel:
    """Any other `provider/name` the agent accepts, as MLflow's `provider:/name`."""
    from mlflow.gateway.provider_registry import is_supported_provider

    provider, sep, name = lm.model.partition("/")
    if not sep or not name:
        raise JudgeModelError(
            f"judge model {lm.model!r} needs a provider prefix, e.g. openai/gpt-4o-mini "
            f"or embedded/qwen2.5-coder-1.5b (judges.lm.model or lm.model)"
        )
    native = is_supported_provider(provider)  # MLflow calls these itself; others go through litellm
    base_url = None
    if lm.api_base:
        base = lm.api_base.rstrip("/")
        # MLflow's own providers take base_url as the endpoint itself; litellm takes the API base.
        base_url = base if not native or base.endswith(_CHAT_PATH) else base + _CHAT_PATH
    headers = None
    if lm.api_key_env:
        key = os.environ.get(lm.api_key_env)
        if not key:
            raise JudgeModelError(
                f"the judges' model {lm.model!r} takes its key from {lm.api_key_env!r}, "
                f"which is not set (judges.lm.api_key_env or lm.api_key_env)"
            )
        headers = {"Authorization": f"Bearer {key}"}
        if provider == "openai":  # as for the embedded model: the header is what is sent
            os.environ.setdefault("OPENAI_API_KEY", "sqlagent-judge-key-in-header")
    return JudgeModel(uri=f"{provider}:/{name}", lm=lm, base_url=base_url, extra_headers=headers)
