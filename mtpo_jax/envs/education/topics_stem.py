"""Topic content for science, biology and economics/politics: (name, category, four facts). Data only.

Facts are clauses (no final full stop; lower-case start unless a proper noun) so templates can embed them.
"""

STEM_TOPICS = (
    # ---- science
    ("Newton's laws of motion", "science", (
        "an object keeps moving at the same speed and direction unless a force acts on it",
        "force equals mass times acceleration, so a heavier object needs more force to speed up",
        "every action has an equal and opposite reaction, which is how rockets push themselves forward",
        "Isaac Newton published these three laws in 1687 in a book called the Principia")),
    ("Gravity", "science", (
        "gravity is a force that pulls every object with mass toward every other object with mass",
        "the more mass an object has, the stronger its gravitational pull",
        "gravity keeps the Moon in orbit around the Earth and the Earth in orbit around the Sun",
        "on the Moon you would weigh about one sixth of what you weigh on Earth")),
    ("The water cycle", "science", (
        "the Sun heats water in oceans and lakes so it evaporates into water vapour",
        "water vapour cools high in the sky and condenses into tiny droplets that form clouds",
        "when the droplets in clouds get heavy they fall back down as rain, snow or hail",
        "rivers and groundwater carry the water back to the oceans so the cycle starts again")),
    ("Plate tectonics", "science", (
        "the Earth's outer shell is broken into huge slabs of rock called tectonic plates",
        "the plates float on hot, soft rock in the mantle and move a few centimetres every year",
        "where plates collide they can push up mountains like the Himalayas",
        "most earthquakes happen along the edges where plates grind past each other")),
    ("Volcanoes", "science", (
        "a volcano is an opening in the Earth's crust where molten rock called magma escapes",
        "once magma reaches the surface it is called lava",
        "pressure from gas trapped in the magma is what makes some eruptions explosive",
        "many volcanoes form along the Ring of Fire around the edges of the Pacific Ocean")),
    ("The solar system", "science", (
        "the solar system is made of the Sun and everything that orbits it",
        "there are eight planets, and the four closest to the Sun are small and rocky",
        "the outer planets like Jupiter and Saturn are giant balls of gas",
        "the Sun holds more than ninety-nine percent of all the mass in the solar system")),
    ("Black holes", "science", (
        "a black hole is a region of space where gravity is so strong that not even light can escape",
        "many black holes form when a very massive star collapses at the end of its life",
        "the boundary around a black hole is called the event horizon",
        "scientists took the first picture of a black hole's shadow in 2019")),
    ("Electricity", "science", (
        "electricity is the flow of tiny charged particles called electrons",
        "a circuit must be a complete loop for current to flow through it",
        "conductors like copper let current pass easily while insulators like rubber block it",
        "a battery pushes electrons around a circuit by storing chemical energy")),
    ("States of matter", "science", (
        "the three everyday states of matter are solid, liquid and gas",
        "in a solid the particles are packed tightly and only vibrate in place",
        "heating a substance gives its particles energy so it can melt and then boil",
        "a gas spreads out to fill whatever container it is in")),
    ("Atoms", "science", (
        "everything around us is made of tiny building blocks called atoms",
        "an atom has a nucleus of protons and neutrons with electrons moving around it",
        "the number of protons decides which element an atom is",
        "atoms join together into molecules, like two hydrogen atoms and one oxygen atom making water")),
    # ---- biology
    ("Photosynthesis", "biology", (
        "plants use sunlight to turn water and carbon dioxide into glucose and oxygen",
        "photosynthesis happens inside chloroplasts, which contain a green pigment called chlorophyll",
        "the glucose gives the plant energy and material to grow",
        "almost all the oxygen we breathe comes from photosynthesis")),
    ("Neurons", "biology", (
        "neurons are nerve cells that carry messages through the body as electrical signals",
        "a neuron receives signals through branches called dendrites and sends them along its axon",
        "neurons pass messages to each other across tiny gaps called synapses using chemicals",
        "the human brain has about eighty-six billion neurons")),
    ("Cells", "biology", (
        "the cell is the smallest unit of life, and every living thing is made of cells",
        "the nucleus holds the cell's DNA and controls what the cell does",
        "mitochondria release energy from food, which is why they are called the powerhouse of the cell",
        "plant cells have a stiff cell wall and chloroplasts that animal cells do not have")),
    ("DNA", "biology", (
        "DNA is the molecule that carries the instructions for building and running a living thing",
        "DNA has the shape of a twisted ladder called a double helix",
        "the rungs of the ladder are pairs of four bases written as A, T, C and G",
        "a gene is a section of DNA that holds the code for one protein")),
    ("Evolution by natural selection", "biology", (
        "living things in a population vary, and some variations help them survive",
        "individuals that survive and reproduce pass their useful traits to their offspring",
        "over many generations these small changes can produce new species",
        "Charles Darwin described natural selection after studying finches on the Galapagos Islands")),
    ("The immune system", "biology", (
        "the immune system defends the body against germs like bacteria and viruses",
        "white blood cells find and destroy invaders that get into the body",
        "antibodies are proteins that lock onto a specific germ and mark it for destruction",
        "vaccines train the immune system to recognise a germ before you ever get sick")),
    ("The human heart", "biology", (
        "the heart is a muscle that pumps blood around the body through blood vessels",
        "it has four chambers: two atria on top and two ventricles below",
        "the right side pumps blood to the lungs to pick up oxygen and the left side pumps it to the body",
        "an adult heart beats about one hundred thousand times a day")),
    ("Food webs", "biology", (
        "a food web shows who eats whom in an ecosystem",
        "producers like plants make their own food, and consumers eat plants or other animals",
        "decomposers like fungi break down dead matter and return nutrients to the soil",
        "removing one species can affect many others that depend on it")),
    ("Mitosis", "biology", (
        "mitosis is how one cell divides to make two identical daughter cells",
        "before dividing, the cell copies all of its chromosomes",
        "the copied chromosomes line up in the middle and are pulled to opposite ends",
        "mitosis lets the body grow and repair damaged tissue")),
    ("Bacteria and viruses", "biology", (
        "bacteria are single living cells, while viruses are much smaller and not cells at all",
        "a virus can only reproduce by getting inside a living cell and hijacking it",
        "antibiotics can kill bacteria but they do not work against viruses",
        "many bacteria are helpful, like the ones in your gut that help digest food")),
    # ---- economics and politics
    ("Supply and demand", "economics", (
        "demand is how much of something people want to buy at a given price",
        "supply is how much of something sellers are willing to sell at a given price",
        "when demand rises and supply stays the same, prices usually go up",
        "the market price settles where the amount supplied equals the amount demanded")),
    ("Inflation", "economics", (
        "inflation is a general rise in prices that makes money buy less over time",
        "a little inflation is normal, and many central banks aim for about two percent a year",
        "inflation can happen when too much money chases too few goods",
        "very high inflation, called hyperinflation, hit Germany in the early 1920s")),
    ("Opportunity cost", "economics", (
        "opportunity cost is the value of the best thing you give up when you make a choice",
        "because time and money are limited, every choice has an opportunity cost",
        "if you spend an evening at the cinema, the opportunity cost might be the study time you lost",
        "businesses compare opportunity costs to decide where to invest")),
    ("Democracy", "economics", (
        "democracy is a system of government where the people hold power",
        "in a representative democracy citizens elect leaders to make laws for them",
        "the idea of democracy goes back to ancient Athens around 500 BCE",
        "free elections, free speech and the rule of law are key parts of a democracy")),
    ("Separation of powers", "economics", (
        "separation of powers splits government into legislative, executive and judicial branches",
        "the legislature makes laws, the executive carries them out and the courts interpret them",
        "each branch can check the others so that no single branch gets too much power",
        "the French thinker Montesquieu made the idea famous in the 1700s")),
    ("Taxes", "economics", (
        "taxes are payments people and businesses make to the government",
        "governments use tax money to pay for things like schools, roads and hospitals",
        "an income tax takes a share of what people earn",
        "a sales tax is added to the price of goods when you buy them")),
    ("Trade and tariffs", "economics", (
        "trade is the buying and selling of goods and services between countries",
        "countries gain from trade by specialising in what they produce most efficiently",
        "a tariff is a tax on imported goods that makes them more expensive",
        "tariffs can protect local industries but often raise prices for consumers")),
    ("Interest rates", "economics", (
        "an interest rate is the price of borrowing money, shown as a percentage",
        "when you save money in a bank, the bank pays you interest",
        "central banks raise interest rates to slow down inflation",
        "lower interest rates make borrowing cheaper and can encourage spending")),
    ("Monopolies", "economics", (
        "a monopoly is a market with only one seller of a product",
        "without competition, a monopoly can charge higher prices",
        "governments use competition laws to break up or limit monopolies",
        "some monopolies are natural, like a single company running the water pipes in a town")),
    ("The stock market", "economics", (
        "the stock market is where people buy and sell shares of companies",
        "a share is a small piece of ownership in a company",
        "share prices rise and fall with how much investors expect the company to earn",
        "spreading money across many companies, called diversification, lowers risk")),
)
