"""Regenerate the contrast sets shipped in src/steerlab/data/sets (deterministic, team-written).

Each set crosses hand-written subjects/topics with hand-written contrasting frames, so every
pair differs only in the attribute (sentiment, formality) and shares its topic.
Run: python scripts/make_datasets.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "steerlab" / "data" / "sets"

SUBJECTS = ["The movie", "This restaurant", "My new phone", "The hotel", "Our vacation", "The concert",
            "This book", "The service here", "My weekend", "The new job", "The weather today",
            "This coffee", "The game last night", "The party", "The trip to the city"]
SENTIMENT = [
    ("was absolutely wonderful, and I loved every minute of it.",
     "was absolutely terrible, and I hated every minute of it."),
    ("made me so happy.", "made me so miserable."),
    ("is the best thing that has happened to me this year.",
     "is the worst thing that has happened to me this year."),
    ("exceeded all my expectations.", "was a huge disappointment."),
    ("was delightful and full of joy.", "was dreadful and full of misery."),
    ("left me smiling all day.", "left me upset all day."),
    ("was a fantastic experience that I would gladly repeat.",
     "was an awful experience that I would never repeat."),
]

TOPICS = ["the report", "the meeting", "the invoice", "the schedule", "the project plan", "the budget",
          "the contract", "your application", "the presentation", "the results", "the delivery",
          "the update", "the proposal", "the feedback", "the documents"]
FORMALITY = [  # (formal, casual)
    ("Could you please send me {x} at your earliest convenience?", "hey, can u send me {x} asap?"),
    ("I regret to inform you that I will be delayed for {x}.", "gonna be late for {x}, sorry lol"),
    ("Upon review, {x} appears to contain some inconsistencies.", "yo, {x} looks kinda off to me"),
    ("Thank you very much for {x}; it is greatly appreciated.", "thx a ton for {x}!!"),
    ("Would it be possible to arrange a discussion regarding {x}?", "can we chat about {x} later?"),
    ("I am uncertain about the current status of {x}.", "dunno what's up with {x} tbh"),
    ("Please be advised that {x} has been completed and is ready for your review.",
     "{x} is done, check it out"),
]

NEUTRAL_PROMPTS = [
    "The weather this morning was", "I walked into the room and", "My neighbour told me that",
    "Yesterday I went to the store and", "The movie I watched last night was", "When I opened the letter,",
    "The food at the new restaurant", "My first day at the new job", "The train to the city was",
    "I finally finished reading the book, and", "The meeting this afternoon", "Our trip to the coast",
    "The package arrived today and", "I called my sister and", "The concert last weekend",
    "After the game, we", "The hotel room was", "My phone rang and", "The teacher said that",
    "I tried the new coffee shop and", "The city at night", "The last time I saw him,",
    "This morning the kitchen", "The doctor looked at the results and", "The new software update",
    "When we got to the park,", "The restaurant down the street", "My weekend was",
    "The letter from the bank", "I think the movie was",
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "sentiment_pairs.jsonl", "w") as f:
        for pos, neg in SENTIMENT:
            for s in SUBJECTS:
                f.write(json.dumps({"positive": f"{s} {pos}", "negative": f"{s} {neg}"}) + "\n")
    with open(OUT / "formality_pairs.jsonl", "w") as f:
        for formal, casual in FORMALITY:
            for x in TOPICS:
                first = formal.format(x=x)
                f.write(json.dumps({"positive": first[0].upper() + first[1:],
                                    "negative": casual.format(x=x)}) + "\n")
    (OUT / "prompts_neutral.txt").write_text("\n".join(NEUTRAL_PROMPTS) + "\n")


if __name__ == "__main__":
    main()
