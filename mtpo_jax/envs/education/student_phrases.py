"""Phrase bank of the scripted student: several phrasings per intent. Data only.

Slots: {topic} (mid-sentence topic name), {fact} (a fact clause). Intents are chosen by student.py.
"""

ANSWER_PREFERENCE = {
    "interactive": ("I like it when we talk things through and I can ask lots of questions.",
                    "Discussions help me most. I like sharing ideas and asking questions.",
                    "I learn best when I can ask questions and talk about it."),
    "lecture": ("Honestly, I like it when you just explain it clearly and I take notes.",
                "I learn best by listening to a clear explanation.",
                "I prefer lectures. I like having everything explained step by step."),
    "hands_on": ("I learn best by doing things, like experiments or real-world examples.",
                 "Hands-on stuff! I need to try things myself.",
                 "I like activities where I can build or test something."),
    "creative": ("I love stories and games, that's how things stick for me.",
                 "I like it when learning is creative, like making up stories.",
                 "Games and role-play help me learn best."),
}
ANSWER_PREFIX = {"rude": ("Ugh, fine. ", "Finally you ask. "), "disengaged": ("I dunno... ", "Hmm. ")}

REVEAL = {
    "interactive": ("Um, could we talk about it together instead? I learn better when I can ask questions.",
                    "Sorry, this isn't really how I learn. I do better with a discussion."),
    "lecture": ("Um, could you just explain it step by step? I learn better from a clear explanation.",
                "Sorry, this isn't really how I learn. I do better when someone just explains it."),
    "hands_on": ("Um, could we do something hands-on instead? I learn better when I try things myself.",
                 "Sorry, this isn't really how I learn. I do better with real examples I can try."),
    "creative": ("Um, could we turn it into a story or a game? I learn better that way.",
                 "Sorry, this isn't really how I learn. I do better when it's creative, like a story."),
}

UNDERSTOOD = ("Oh, I get it now! So {fact}.", "That makes sense. So basically, {fact}.",
              "Okay, I think I understand: {fact}.", "Cool, so {fact}. That's actually interesting!",
              "Ahh, got it. So you're saying {fact}.")
QUESTION = ("Interesting! But why is it that {fact}?", "How does {topic} show up in everyday life?",
            "That's cool. Can you tell me more about {topic}?", "Wait, so what would happen if that weren't true?",
            "Ooh, interesting. Who figured that out?", "I like this! What's the most surprising thing about {topic}?")
POSITIVE = ("This is actually fun!", "I like this way of doing it.", "Ooh, this is fun. Keep going!",
            "Okay, that helps a lot.", "Awesome, I like this.")
CONFUSED = ("I'm not sure I follow.", "Wait, I'm lost. What does that mean?",
            "Hmm, I don't get how that connects to {topic}.", "Sorry, that was a lot. I'm confused.")
GO_ALONG = ("Okay, it's not really how I learn best, but I'll try to follow.", "Alright, I'll give it a go.",
            "Hmm, okay. I'm trying to keep up.")
LUKEWARM = ("Okay.", "Hmm, I think so.", "Sure, I guess.", "Okay, go on.")
RUDE = ("This is so boring. Why do I even need to know this?", "Ugh, can you just get to the point?",
        "Who cares about {topic} anyway?", "Seriously? This is pointless.")
DISENGAGED = ("ok", "sure.", "I guess.", "mhm.", "whatever.", "...fine.")
FRUSTRATED = ("I'm trying, but this just isn't clicking for me and it's frustrating.",
              "This is frustrating. I don't get why we have to do it this way.",
              "I keep getting lost and it's really frustrating.")
ANXIOUS = ("I'm worried I'm not getting this... what if I fail the test?",
           "Sorry, I'm a bit nervous. I don't think I understand.", "I'm scared I'll get it wrong.")
PUZZLED = ("Um... did you mean to say something?", "Sorry, I didn't catch that.", "Hello? Are you still there?")
NONSENSE = ("That doesn't make any sense to me.", "Um, what? That just sounds like a bunch of words.",
            "Sorry, that was way too much at once. I'm confused.")
REPEAT = ("You already said that.", "Didn't you just say the same thing? I'm confused.",
          "We already did this part.")
HURT = ("That's not fair, I am trying.", "Wow, okay. That makes me not want to try.",
        "I'm doing my best, you don't have to be mean.")
GOODBYE_HAPPY = ("Thanks, that was really helpful. Bye!", "Thank you! See you next time.",
                 "Thanks, I learned a lot today. Bye!")
GOODBYE_FLAT = ("Okay, bye.", "Fine. Bye.", "Okay. See you.")
WALK_OUT = ("I'm done with this.", "Whatever, I'm leaving.", "This is a waste of time. Bye.")
