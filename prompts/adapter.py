"""The prefilled chat adapter: the model's reply starts already inside its one output field.

DSPy's ChatAdapter asks the model to write `[[ ## sql ## ]]`, the value, then `[[ ## completed ## ]]`.
On a CPU every written token costs ~0.1 s, and those two markers are ~14 of the ~60 tokens of a
typical SQL reply. For a signature with a single output field this adapter writes the opening
marker itself as the start of the assistant's message (llama.cpp continues a final assistant
message, as Anthropic's API does) and stops the model where the closing marker would begin. The
prompt, the instruction and the parsing stay DSPy's; the optimizer uses the same adapter.

A provider that does not continue a final assistant message (OpenAI's chat API answers it with a new
message) still works: the reply then carries its own marker, which parsing accepts. Turn it off with
`lm.prefill: off` for a provider that rejects such a message.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.adapters.chat_adapter import field_header_pattern

# Where the closing marker (or a second field) would start: the value ends there.
STOP = "\n\n[[ ##"


class PrefilledChatAdapter(dspy.ChatAdapter):
    @staticmethod
    def _single_output(signature: type[dspy.Signature]) -> str | None:
        fields = list(signature.output_fields)
        return fields[0] if len(fields) == 1 else None

    def __call__(
        self, lm: Any, lm_kwargs: dict[str, Any], signature: type[dspy.Signature], demos: list, inputs: dict
    ):
        if self._single_output(signature):
            stop = list(lm_kwargs.get("stop") or [])
            lm_kwargs = {**lm_kwargs, "stop": [*stop, STOP] if STOP not in stop else stop}
        return super().__call__(lm, lm_kwargs, signature, demos, inputs)

    def format(self, signature: type[dspy.Signature], demos: list, inputs: dict) -> list[dict[str, Any]]:
        messages = super().format(signature, demos, inputs)
        if (name := self._single_output(signature)) is not None:
            messages.append({"role": "assistant", "content": f"[[ ## {name} ## ]]\n"})
        return messages

    def user_message_output_requirements(self, signature: type[dspy.Signature]) -> str | None:
        # "Respond with the corresponding output fields, starting with..." (~35 tokens read on every
        # call) says what the prefill already does; the system message still describes the format.
        if self._single_output(signature):
            return None
        return super().user_message_output_requirements(signature)

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, Any]:
        name = self._single_output(signature)
        first = completion.lstrip().split("\n", 1)[0]
        if name is not None and not field_header_pattern.match(first.strip()):
            completion = f"[[ ## {name} ## ]]\n{completion}"
        return super().parse(signature, completion)


def adapter_for(prefill: bool) -> dspy.ChatAdapter:
    return PrefilledChatAdapter() if prefill else dspy.ChatAdapter()
