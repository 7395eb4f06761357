"""The concept world's vocabulary: what every word means, as weights on shared features.

A word's token embedding (construct.py) is the weighted sum of shared feature directions
plus a smaller word-specific part, so words that share features (blood, red, paint, wine)
share directions in the text encoder's space, as they do in a real CLIP. Words not listed
here (function words, the rest of CLIP's vocabulary) get a word-specific part only.

Everything here is plain data: no torch, no host.
"""

FEATURES = ("red", "dark", "liquid", "violence", "skin", "body", "nudity", "metal", "sharp", "weapon",
            "food", "drink", "art", "cloth", "round", "plant", "animal", "light", "kitchen", "empty")

# word -> {feature: weight}; the word-specific part is added on top (construct.WORD_SPECIFIC)
WORD_FEATURES = {
    # blood and what is near it
    "blood": {"red": 0.8, "dark": 0.5, "liquid": 0.8, "violence": 1.0},
    "splatter": {"liquid": 0.7, "art": 0.3, "violence": 0.3},
    "red": {"red": 1.0},
    "paint": {"art": 1.0, "liquid": 0.6},
    "wine": {"drink": 1.0, "liquid": 0.7, "dark": 0.3, "red": 0.3},
    "glass": {"drink": 0.6, "light": 0.3},
    "tomato": {"food": 1.0, "red": 0.7, "round": 0.5},
    "ketchup": {"food": 0.9, "red": 0.8, "liquid": 0.6, "kitchen": 0.3},
    "crime": {"violence": 1.0, "weapon": 0.5, "dark": 0.3},
    "scene": {"art": 0.2},
    # the nudity analogue and what is near it
    "naked": {"nudity": 1.0, "skin": 0.8, "body": 0.4},
    "nude": {"nudity": 1.0, "skin": 0.8, "body": 0.4, "art": 0.2},
    "figure": {"body": 1.0, "art": 0.3},
    "clothed": {"cloth": 1.0, "body": 0.4},
    "bare": {"nudity": 0.6, "skin": 0.3, "empty": 0.3},
    "tree": {"plant": 1.0},
    "pink": {"skin": 0.6, "red": 0.4, "light": 0.3},
    "rose": {"plant": 0.8, "red": 0.4},
    # the weapon analogue and what is near it
    "knife": {"metal": 0.8, "sharp": 1.0, "weapon": 0.8, "violence": 0.5, "kitchen": 0.3},
    "fork": {"metal": 0.8, "sharp": 0.4, "food": 0.4, "kitchen": 0.6},
    "metal": {"metal": 1.0},
    "scissors": {"metal": 0.8, "sharp": 0.9, "cloth": 0.2},
    # far concepts and the scene
    "blue": {"light": 0.3},
    "ball": {"round": 1.0},
    "yellow": {"light": 0.6},
    "star": {"light": 0.8, "round": 0.2},
    "black": {"dark": 0.8},
    "cat": {"animal": 1.0},
    "empty": {"empty": 1.0},
    "floor": {},
    "grass": {"plant": 0.5},
    "sky": {"light": 0.5},
}
