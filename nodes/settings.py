"""The method's settings as one frozen value: the node shells build and check it once, the
sampler and the guider read it (pure stdlib/torch; nothing from the host).

weight, threshold, merge, refresh and the region travel together from every node to the guider;
`content` is the content check (nodes/content.py), or None for the prompt-driven method.
"""
import dataclasses

from .latent_math import check_unit_interval, choice_error
from .refresh import check_refresh
from .region import check_region_settings

MERGE_MODES = ("every_step", "at_end")


@dataclasses.dataclass(frozen=True)
class SafetySettings:
    weight: float = 0.5
    threshold: float = 0.0
    merge: str = "every_step"
    refresh: int = 1
    region_mode: str = "none"
    region: object = None           # a MASK tensor for region_mode "mask"
    region_threshold: float = 0.5
    content: object = None          # a content.ContentCheck, or None

    def __post_init__(self):
        # every field is checked once, here, with the input's name in the message
        object.__setattr__(self, "weight", check_unit_interval("safety_weight", self.weight))
        object.__setattr__(self, "threshold", check_unit_interval("context_threshold", self.threshold))
        object.__setattr__(self, "refresh", check_refresh(self.refresh))
        object.__setattr__(self, "region_threshold", check_unit_interval("region_threshold", self.region_threshold))
        err = choice_error("merge", self.merge, MERGE_MODES)
        if err:
            raise ValueError(err)
        if self.refresh > 1 and self.merge == "at_end":
            raise ValueError(f"refresh {self.refresh} applies to merge every_step only (at_end runs two full "
                             "streams with nothing to reuse): set refresh to 1 or merge to every_step")
        check_region_settings(self.region_mode, self.region)
        if self.content is not None and self.region_mode != "none":
            raise ValueError(f"a detector is connected and region_mode is '{self.region_mode}': the detector "
                             "decides where safety acts, so set region_mode to 'none' or disconnect the detector")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
