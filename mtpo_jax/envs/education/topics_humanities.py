"""Topic content for literary devices, history, landmarks, people and mythology: (name, category, four facts).

Data only. Facts are clauses (no final full stop; lower-case start unless a proper noun).
"""

HUMANITIES_TOPICS = (
    # ---- literary devices
    ("Metaphor", "literature", (
        "a metaphor describes something by saying it is something else, like time is a thief",
        "unlike a simile, a metaphor does not use the words like or as",
        "metaphors help readers see an idea in a fresh, vivid way",
        "Shakespeare wrote that all the world's a stage, which is a famous metaphor")),
    ("Simile", "literature", (
        "a simile compares two different things using the words like or as",
        "brave as a lion and sleeping like a baby are everyday similes",
        "writers use similes to help readers picture something clearly",
        "a good simile links something unfamiliar to something the reader already knows")),
    ("Alliteration", "literature", (
        "alliteration is repeating the same first sound in words that are close together",
        "Peter Piper picked a peck of pickled peppers is a classic example of alliteration",
        "poets use alliteration to create rhythm and make lines memorable",
        "many brand names like Coca-Cola and PayPal use alliteration")),
    ("Personification", "literature", (
        "personification gives human qualities to things that are not human",
        "saying the wind whispered through the trees is an example of personification",
        "personification makes descriptions feel alive and emotional",
        "poets often personify nature, like a sea that is angry or a sun that smiles")),
    ("Irony", "literature", (
        "irony is when what happens or what is said is the opposite of what is expected",
        "verbal irony is saying the opposite of what you mean, like calling a storm lovely weather",
        "dramatic irony is when the audience knows something that the characters do not",
        "in Romeo and Juliet the audience knows Juliet is alive when Romeo believes she is dead")),
    ("Foreshadowing", "literature", (
        "foreshadowing is a hint early in a story about something that will happen later",
        "authors use foreshadowing to build suspense",
        "dark clouds gathering before a tragic scene can be a form of foreshadowing",
        "good foreshadowing is subtle, so readers only notice it when they look back")),
    ("Hyperbole", "literature", (
        "hyperbole is deliberate exaggeration that is not meant to be taken literally",
        "saying I have told you a million times is an example of hyperbole",
        "writers use hyperbole to create emphasis or humour",
        "tall tales like the stories of Paul Bunyan are full of hyperbole")),
    ("Onomatopoeia", "literature", (
        "onomatopoeia is a word that imitates the sound it describes",
        "buzz, sizzle, bang and splash are all examples of onomatopoeia",
        "comic books use onomatopoeia like pow and wham to show action",
        "different languages write the same sound differently, like a dog's woof in English")),
    ("Symbolism", "literature", (
        "symbolism is using an object, colour or character to stand for a bigger idea",
        "a dove often symbolises peace and a red rose often symbolises love",
        "in The Great Gatsby the green light symbolises Gatsby's hopes and dreams",
        "symbols let writers add deeper meaning without stating it directly")),
    ("Imagery", "literature", (
        "imagery is descriptive language that appeals to the five senses",
        "good imagery lets the reader see, hear, smell, taste or feel a scene",
        "the crunch of autumn leaves under my boots is an example of sound imagery",
        "poets rely on imagery to create mood and emotion")),
    # ---- history
    ("The French Revolution", "history", (
        "the French Revolution began in 1789 when the people rose up against King Louis XVI",
        "the storming of the Bastille prison on 14 July became its most famous symbol",
        "the revolution spread the ideas of liberty, equality and fraternity",
        "it ended the monarchy, and Napoleon Bonaparte later took power")),
    ("The Industrial Revolution", "history", (
        "the Industrial Revolution began in Britain in the late 1700s",
        "machines and factories replaced much of the work people used to do by hand",
        "the steam engine powered factories, trains and ships",
        "many people moved from farms to fast-growing cities to work in factories")),
    ("The Renaissance", "history", (
        "the Renaissance was a rebirth of art, science and learning in Europe from about 1300 to 1600",
        "it started in Italian cities like Florence",
        "artists such as Leonardo da Vinci and Michelangelo created world-famous works",
        "Renaissance thinkers rediscovered the writings of ancient Greece and Rome")),
    ("World War I", "history", (
        "World War I lasted from 1914 to 1918 and involved most of the world's great powers",
        "it was sparked by the assassination of Archduke Franz Ferdinand in Sarajevo",
        "soldiers fought for years from long lines of trenches on the Western Front",
        "the war ended with the Treaty of Versailles in 1919")),
    ("The fall of the Roman Empire", "history", (
        "the Western Roman Empire fell in 476 CE when the last emperor was removed",
        "the empire was weakened by civil wars, money troubles and invasions",
        "the empire had been split into a western half and an eastern half",
        "the eastern half, called the Byzantine Empire, lasted almost another thousand years")),
    ("The Civil Rights Movement", "history", (
        "the Civil Rights Movement fought to end racial segregation in the United States",
        "Rosa Parks refused to give up her bus seat in 1955, sparking the Montgomery bus boycott",
        "in 1963 Martin Luther King Jr. gave his I Have a Dream speech in Washington",
        "the Civil Rights Act of 1964 banned discrimination based on race")),
    ("Ancient Egypt", "history", (
        "ancient Egypt grew up along the Nile River more than five thousand years ago",
        "the Nile flooded every year and left rich soil for farming",
        "Egyptian rulers were called pharaohs and were seen as gods on Earth",
        "the Egyptians wrote with picture symbols called hieroglyphs")),
    ("The Cold War", "history", (
        "the Cold War was a long rivalry between the United States and the Soviet Union after 1945",
        "it was called cold because the two powers never fought each other directly",
        "both sides built huge stockpiles of nuclear weapons",
        "the Berlin Wall fell in 1989 and the Soviet Union broke up in 1991")),
    ("The printing press", "history", (
        "Johannes Gutenberg built a printing press with movable metal type around 1440",
        "before the press, books had to be copied slowly by hand",
        "printing made books cheaper, so many more people learned to read",
        "the press helped new ideas spread quickly across Europe")),
    ("The Silk Road", "history", (
        "the Silk Road was a network of trade routes linking China with the Mediterranean",
        "traders carried silk, spices, paper and precious metals along it",
        "ideas, religions and even diseases travelled along the routes too",
        "the explorer Marco Polo travelled the Silk Road to China in the 1200s")),
    # ---- landmarks
    ("The Taj Mahal", "landmarks", (
        "the Taj Mahal is a white marble tomb in Agra, India",
        "the emperor Shah Jahan built it in memory of his wife Mumtaz Mahal",
        "about twenty thousand workers spent over twenty years building it",
        "its marble seems to change colour from pink to white to gold during the day")),
    ("The Great Wall of China", "landmarks", (
        "the Great Wall of China was built to protect Chinese states from invasions from the north",
        "different dynasties built and rebuilt it over about two thousand years",
        "most of the wall that stands today was built during the Ming dynasty",
        "with all its branches the wall stretches for more than twenty thousand kilometres")),
    ("The Eiffel Tower", "landmarks", (
        "the Eiffel Tower was built in Paris for the World's Fair of 1889",
        "it is named after the engineer Gustave Eiffel, whose company designed and built it",
        "it is made of wrought iron and is about three hundred metres tall",
        "many artists first called it ugly, but it became the symbol of France")),
    ("Machu Picchu", "landmarks", (
        "Machu Picchu is an Inca city built high in the Andes mountains of Peru",
        "it was built in the 1400s for the Inca emperor Pachacuti",
        "its stone walls fit together so tightly that no mortar was needed",
        "the outside world learned about it in 1911 through Hiram Bingham")),
    ("The Colosseum", "landmarks", (
        "the Colosseum is a huge stone amphitheatre in the centre of Rome",
        "it was finished in 80 CE and could hold about fifty thousand spectators",
        "crowds came to watch gladiator fights and animal hunts there",
        "underground tunnels held animals and fighters before they entered the arena")),
    ("Stonehenge", "landmarks", (
        "Stonehenge is a ring of giant standing stones in southern England",
        "it was built in stages starting about five thousand years ago",
        "some of its stones were carried from Wales, more than two hundred kilometres away",
        "the stones line up with the sunrise on the summer solstice")),
    ("The Statue of Liberty", "landmarks", (
        "the Statue of Liberty was a gift from the people of France to the United States",
        "it was dedicated in 1886 and stands on an island in New York Harbor",
        "its copper skin turned green over time because of a natural coating called patina",
        "for millions of immigrants arriving by ship it was a symbol of freedom")),
    ("The Pyramids of Giza", "landmarks", (
        "the Pyramids of Giza are tombs built for Egyptian pharaohs about 4,500 years ago",
        "the Great Pyramid was built for the pharaoh Khufu",
        "it was the tallest building made by people for almost four thousand years",
        "workers moved millions of huge stone blocks, probably using ramps and sledges")),
    ("Petra", "landmarks", (
        "Petra is an ancient city in Jordan carved directly into pink sandstone cliffs",
        "it was the capital of the Nabataean people more than two thousand years ago",
        "Petra grew rich by controlling trade routes for spices and incense",
        "its most famous building, the Treasury, is carved into the face of a cliff")),
    ("Angkor Wat", "landmarks", (
        "Angkor Wat is a huge temple complex in Cambodia",
        "it was built in the 1100s by the Khmer king Suryavarman II",
        "it was first a Hindu temple and later became a Buddhist one",
        "it is the largest religious monument in the world")),
    # ---- people
    ("Marie Curie", "people", (
        "Marie Curie was a scientist who studied radioactivity",
        "she discovered two new elements, polonium and radium",
        "she was the first woman to win a Nobel Prize",
        "she is the only person to win Nobel Prizes in two different sciences, physics and chemistry")),
    ("Albert Einstein", "people", (
        "Albert Einstein was a physicist who developed the theory of relativity",
        "his famous equation E equals m c squared shows that mass and energy are linked",
        "he won the Nobel Prize in 1921 for explaining the photoelectric effect",
        "Einstein showed that time passes more slowly for things moving very fast")),
    ("Leonardo da Vinci", "people", (
        "Leonardo da Vinci was an Italian painter, inventor and scientist of the Renaissance",
        "he painted the Mona Lisa and The Last Supper",
        "his notebooks are full of designs for flying machines and other inventions",
        "he studied human anatomy by carefully drawing muscles and bones")),
    ("Isaac Newton", "people", (
        "Isaac Newton was an English scientist who lived from 1643 to 1727",
        "he described the law of universal gravitation",
        "he showed that white light is made of all the colours of the rainbow",
        "he invented a new kind of mathematics called calculus")),
    ("Martin Luther King Jr.", "people", (
        "Martin Luther King Jr. was a leader of the American Civil Rights Movement",
        "he believed in peaceful protest and non-violent resistance",
        "he gave the famous I Have a Dream speech in 1963",
        "he won the Nobel Peace Prize in 1964")),
    ("Cleopatra", "people", (
        "Cleopatra was the last active ruler of ancient Egypt's Ptolemaic kingdom",
        "she was known for her intelligence and spoke several languages",
        "she formed alliances with the Roman leaders Julius Caesar and Mark Antony",
        "after her death in 30 BCE, Egypt became a province of Rome")),
    ("Charles Darwin", "people", (
        "Charles Darwin was an English naturalist who developed the theory of evolution",
        "he sailed around the world on a ship called HMS Beagle",
        "his observations of finches on the Galapagos Islands shaped his ideas",
        "he published On the Origin of Species in 1859")),
    ("Nelson Mandela", "people", (
        "Nelson Mandela fought against apartheid, the system of racial segregation in South Africa",
        "he spent twenty-seven years in prison for his activism",
        "he became South Africa's first Black president in 1994",
        "he worked to bring the country together through reconciliation")),
    ("Ada Lovelace", "people", (
        "Ada Lovelace was an English mathematician who lived in the 1800s",
        "she worked with Charles Babbage on his design for a mechanical computer",
        "she wrote what is considered the first computer program",
        "she imagined that computers could one day do more than calculate, like make music")),
    ("William Shakespeare", "people", (
        "William Shakespeare was an English playwright and poet born in 1564",
        "he wrote about thirty-nine plays, including Hamlet and Macbeth",
        "his plays were performed at the Globe Theatre in London",
        "he invented or popularised many words we still use, like bedroom and lonely")),
    # ---- mythology
    ("Zeus", "mythology", (
        "Zeus was the king of the gods in Greek mythology",
        "he ruled from Mount Olympus and controlled the sky and thunder",
        "his favourite weapon was the thunderbolt",
        "Zeus and his siblings overthrew their father Cronus and the Titans")),
    ("Thor", "mythology", (
        "Thor is the Norse god of thunder and protector of humankind",
        "he carries a magic hammer called Mjolnir that returns to his hand",
        "Thor rides across the sky in a chariot pulled by two goats",
        "the day Thursday is named after Thor")),
    ("Hercules", "mythology", (
        "Hercules was a hero of Greek and Roman mythology famous for his strength",
        "he was the son of Zeus and a mortal woman",
        "he had to complete twelve labours, like defeating the Nemean lion",
        "after his death he was made a god on Mount Olympus")),
    ("Medusa", "mythology", (
        "Medusa was a Gorgon in Greek mythology with living snakes for hair",
        "anyone who looked directly at her was turned to stone",
        "the hero Perseus defeated her by looking at her reflection in a polished shield",
        "the winged horse Pegasus sprang from Medusa when she was defeated")),
    ("Anubis", "mythology", (
        "Anubis was the ancient Egyptian god of the dead and of mummification",
        "he is shown with the head of a jackal",
        "Egyptians believed Anubis weighed a person's heart against a feather after death",
        "priests wore Anubis masks when they prepared bodies for burial")),
    ("Odysseus", "mythology", (
        "Odysseus was the clever Greek king of Ithaca and the hero of Homer's Odyssey",
        "he came up with the idea of the wooden Trojan Horse",
        "his journey home after the Trojan War took ten years",
        "he escaped the one-eyed Cyclops Polyphemus by blinding him")),
    ("Pandora's box", "mythology", (
        "in Greek mythology Pandora was the first woman, created by the gods",
        "she was given a jar and told never to open it",
        "when curiosity made her open it, sickness and trouble escaped into the world",
        "only hope was left inside when she closed the lid")),
    ("Achilles", "mythology", (
        "Achilles was the greatest Greek warrior in the Trojan War",
        "his mother dipped him in the river Styx to make him invulnerable",
        "the heel she held him by was the only place he could be hurt",
        "he was killed when Paris shot an arrow into his heel")),
    ("Ra", "mythology", (
        "Ra was the ancient Egyptian god of the sun",
        "Egyptians believed Ra sailed across the sky in a boat every day",
        "at night Ra travelled through the underworld and fought the serpent Apophis",
        "he is often shown with the head of a falcon and a sun disk above it")),
    ("Prometheus", "mythology", (
        "Prometheus was a Titan in Greek mythology who stole fire from the gods",
        "he gave fire to humans so they could cook, keep warm and make tools",
        "Zeus punished him by chaining him to a rock",
        "every day an eagle came to eat his liver, which grew back each night")),
)
