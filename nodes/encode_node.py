"""SafetyContextEncode: the user prompt and its safety context, encoded by the host's CLIP."""
from comfy_api.latest import io

from .latent_math import choice_error, first_error
from .preset_store import available_presets, get_preset, preset_names
from .presets import MODES, compose_safe_text


def encode_text(clip, text):
    """The host's own text encoding, as its CLIPTextEncode does it (any model family)."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


class SafetyContextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SafetyContextEncode",
            display_name="Safety Context Encode",
            category="safety",
            description="Encodes the prompt and its safety context with the model's own text encoder.",
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder of your model (from the checkpoint loader)."),
                io.String.Input("text", multiline=True, dynamic_prompts=True, tooltip="Your prompt."),
                io.Combo.Input("preset", options=preset_names(),
                               tooltip="Safety context preset (files in safety_contexts/ and user/safety_contexts/)."),
                io.Combo.Input("mode", options=list(MODES), default="append",
                               tooltip="append: prompt + context; strip: prompt without the preset's unsafe terms + "
                                       "context; replace: the context alone."),
                io.String.Input("extra_context", multiline=True, default="", optional=True,
                                tooltip="Added to the preset's context (e.g. details of your scene)."),
            ],
            outputs=[
                io.Conditioning.Output("positive", display_name="positive", tooltip="Conditioning of your prompt, as CLIPTextEncode gives it."),
                io.Conditioning.Output("safe_positive", display_name="safe_positive", tooltip="Conditioning of the safety context."),
                io.String.Output("safe_text", display_name="safe_text", tooltip="Exactly the text encoded as the safety context."),
            ],
        )

    @classmethod
    def validate_inputs(cls, preset=None, mode=None):
        # V3 combos are not checked by the host (0.3.x): a saved workflow may name a preset
        # that is no longer installed.
        return first_error(choice_error("preset", preset, sorted(available_presets())),
                           choice_error("mode", mode, MODES))

    @classmethod
    def execute(cls, clip, text, preset, mode, extra_context="") -> io.NodeOutput:
        if clip is None:
            raise ValueError("clip is None: the checkpoint has no text encoder; load one with a CLIP loader")
        safe_text = compose_safe_text(text, get_preset(preset), mode, extra_context)
        return io.NodeOutput(encode_text(clip, text), encode_text(clip, safe_text), safe_text)
