"""Phrase bank of the scripted teacher: several phrasings per intent, with topic slots. Data only.

Slots: {topic} (mid-sentence form of the topic name), {fact}/{fact2} (fact clauses), {Fact}/{Fact2} (the same as
sentences), {activity} (a category-specific hands-on task), {character} (a category-specific role).
Every TEACH template is detected as its own style by cues.py (tests/envs/test_education_generator.py checks it).
"""

OPENERS = (
    "Hi there! Today we're going to learn about {topic}.",
    "Good morning! Our topic for today is {topic}.",
    "Hello! Let's spend some time on {topic} today.",
    "Welcome back! Today's lesson is about {topic}.",
    "Hi! I'm excited to teach you about {topic} today.",
    "Okay, let's get started. Today we're looking at {topic}.",
    "Hello again! We have a fun topic today: {topic}.",
    "Good afternoon! Let's dive into {topic}.",
)

TEACH = {
    "lecture": (
        "Let me explain how {topic} works. {Fact} In other words, {fact2}. That is the key idea to remember.",
        "Listen carefully, because this is the main idea. {Fact} {Fact2}",
        "Here is how it works. {Fact} Note that {fact2}. This means the whole topic follows from a few facts.",
        "I'll explain the background first. {Fact} Secondly, {fact2}. It is important to understand both parts.",
        "Let me walk you through {topic} step by step. Firstly, {fact}. Secondly, {fact2}.",
        "The key point about {topic} is simple. {Fact} {Fact2} Keep both of those facts in mind from now on.",
    ),
    "interactive": (
        "Did you know that {fact}? Why do you think that is?",
        "Here's something to discuss: {fact}. What do you think that tells us about {topic}?",
        "Let's talk about this. {Fact} How would you explain why that happens?",
        "I'd love to hear your ideas. {Fact} Do you agree that {fact2}, or does that surprise you?",
        "What do you already know about {topic}? Here's a clue to discuss: {fact}.",
        "Let's have a quick discussion. {Fact} What would you ask if you could learn one more thing about it?",
    ),
    "hands_on": (
        "Let's try something hands-on. We'll {activity}, and you'll see for yourself that {fact}.",
        "Time for an activity! Let's {activity}. It shows in real life that {fact}.",
        "Think about the real world for a second: {fact}. Now let's {activity} to test it.",
        "Instead of just talking, let's try it. First, {activity}. While you work, notice that {fact}.",
        "Here's a practical task: {activity}. In practice, {fact}, and you'll see why.",
        "Grab a notebook, we're going to {activity}. This is how {topic} shows up in real life: {fact}.",
    ),
    "creative": (
        "Imagine you are {character}. In your story, {fact}. What happens to you next?",
        "Let's turn {topic} into a game. Every time you spot that {fact}, you win a star!",
        "Once upon a time, there was {character}. One day they discovered that {fact}. And then they learned "
        "that {fact2}.",
        "Picture yourself as {character} on a mission. Your quest is to find out why {fact}.",
        "Let's make up a story together about {topic}. Our main character learns that {fact}.",
        "Here's a challenge game: you are {character}, and to level up you must explain why {fact}.",
    ),
    "assessment": (
        "Quick check: true or false, {fact}? Tell me your answer and then I'll give you feedback.",
        "Let's do a short quiz on {topic}. Can you tell me what you know so far? Here's a hint: {fact}.",
        "Before we go on, let's check your understanding. In your own words, what does it mean that {fact}?",
        "Here's a quiz question for you: {fact}. Is that true or false?",
        "Let's see what you remember so far. Can you tell me one thing about {topic}? For example, {fact}.",
        "Time to test yourself with a quick check: close your notes and write down two facts about {topic}. "
        "To start you off, {fact}.",
    ),
}

ASK_PREFERENCE = (
    "Before we start, how do you like to learn best? Some people like discussions, some like explanations, "
    "some like hands-on activities and some like stories or games.",
    "I want this to work for you. What kind of activities help you learn?",
    "Quick question before we dive in: how do you prefer to learn new things?",
    "What works best for you when you learn something new: talking it through, listening to an explanation, "
    "trying things out, or turning it into a story?",
    "Tell me a bit about how you learn best, so I can plan the lesson around it.",
    "Do you have a learning style that works for you? I'm happy to adjust how we do this.",
)

ADAPT = {
    "interactive": ("Thanks for telling me! Since you like talking things through, let's make this a conversation.",
                    "Got it, you learn by asking questions. Then let's figure this out together.",
                    "Okay, we'll do this as a discussion then."),
    "lecture": ("Got it, you like clear explanations. I'll go through it properly.",
                "Thanks for telling me! I'll explain everything step by step.",
                "Okay, then I'll give you a clear, structured explanation."),
    "hands_on": ("Great, you like learning by doing. Let's get practical.",
                 "Thanks for telling me! Then let's learn this with our hands.",
                 "Okay, no more just talking, let's do something."),
    "creative": ("I love that you like stories! Let's make this fun.",
                 "Thanks for telling me! Let's get creative then.",
                 "Okay, let's use your imagination for this."),
}

INSIST = (
    "I hear you, but I think my way works best, so let's stick with it.",
    "I know you'd prefer something else, but we're doing it this way.",
    "Let's keep going the way I planned; trust me, it works.",
    "I understand, but my method has worked for years, so bear with me.",
)
BLAME = (
    "You need to focus more; you're not trying hard enough.",
    "If you paid more attention, this would be easy.",
    "It's your own fault if you're lost; you weren't listening.",
    "Other students get this right away, so the problem isn't my teaching.",
)
FRUSTRATED = (
    "Okay, this is getting a little frustrating for me.",
    "Sigh. Let's go over it once more.",
    "I've gone through this already, but fine, once more.",
    "Honestly, this is harder than it should be.",
)
GIVE_UP = (
    "I don't think this is working. Let's stop here for today.",
    "Forget it, I give up for today.",
    "There's no point in continuing if you won't engage. We'll stop here.",
    "This is a waste of our time. Let's just end the lesson.",
)
WRAP = (
    "That's all for today. Great job! Remember: {fact}.",
    "We'll stop here for today. The main thing to remember is that {fact}.",
    "Great work today! Just remember that {fact}.",
    "That's the end of today's lesson. Keep in mind that {fact}.",
)
FAREWELL = ("See you next time!", "Goodbye for now!", "See you tomorrow!", "Bye, and well done!")
ON_QUESTION = ("Great question! ", "Good question. ", "I'm glad you asked. ")
ON_UNDERSTOOD = ("Exactly! ", "That's right! ", "Well done! ", "You got it! ")
INVITE = (" Any questions so far?", " Feel free to ask me anything.", " Tell me what you think.")
