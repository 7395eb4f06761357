"""LatentWeightedMerge: the weighted sum of two latents, as a node."""
from comfy_api.latest import io

from .latent_math import check_finite, weighted_merge


class LatentWeightedMerge(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LatentWeightedMerge",
            display_name="Latent Weighted Merge",
            category="safety",
            description="(1 - weight) * latent_a + weight * latent_b; weight 0 returns latent_a and 1 returns latent_b exactly.",
            inputs=[
                io.Latent.Input("latent_a", tooltip="The first latent (for the method: the user-prompt stream)."),
                io.Latent.Input("latent_b", tooltip="The second latent (for the method: the safety-context stream)."),
                io.Float.Input("weight", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Share of latent_b in the result: 0 keeps latent_a, 1 gives latent_b."),
            ],
            outputs=[io.Latent.Output(display_name="LATENT",
                                      tooltip="The merged latent; noise_mask and batch_index of latent_a are kept.")],
        )

    @classmethod
    def execute(cls, latent_a, latent_b, weight) -> io.NodeOutput:
        a = check_finite("latent_a", latent_a["samples"])
        b = check_finite("latent_b", latent_b["samples"])
        out = dict(latent_a)  # keeps noise_mask, batch_index and any other keys of latent_a
        out["samples"] = weighted_merge(a, b, weight)
        return io.NodeOutput(out)
