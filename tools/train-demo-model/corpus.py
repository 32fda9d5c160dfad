"""Seeded generator of a synthetic fact world for the rwkv-edit demo model (dev-time only).

Every document is a list of (text, is_answer) segments; the tokenizer turns it into ids and a per-token
loss weight (answer tokens are weighted more in train.py). Documents are separated by token 0.

Held out for evaluation (never generated while training):
  * (name, property, value) combinations with heldout_combo(...) True (about 1 in 10), for every property;
    eval.py builds its contexts only from these combinations.
  * the query templates in HELDOUT_QUERIES (e.g. "Which city does N live in?").
All names appear in fact sentences during training (names seen only in filler stay at chance).
"""
import random
import re
import zlib

FIRST_F = """Alice Carol Eve Grace Heidi Judy Mallory Olivia Peggy Sybil Wendy Anna Beth Clara Diana Emma Fiona
Gina Hannah Irene Julia Karen Laura Maria Nina Paula Rachel Sarah Tina Uma Vera Xena Yara Zoe Amy Bella Chloe
Daisy Ella Freya Holly Isla Jade Kate Lily Mia Nora Ruby Sophie Lucy Megan Rose Alice Helen Jane Kim Lisa Mary
Sue Tara Ivy Lena Molly Nadia Ada Leah Maya""".split()
FIRST_M = """Bob Dave Frank Ivan Oscar Trent Victor Walter Adam Ben Carl Dan Eric Fred George Harry Ian Jack Kevin
Leo Mark Nick Owen Paul Quinn Ryan Sam Tom Umar Vince Will Xavier Yusuf Zack Alex Bruce Colin Dylan Ethan Felix
Gary Henry Isaac James Karl Liam Max Noah Oliver Peter Ralph Simon Tony Hugo Lars Omar Ravi Theo Finn Seth Joel""".split()


def _dedup(xs):
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


FIRST_F = _dedup(FIRST_F)
FIRST_M = [n for n in _dedup(FIRST_M) if n not in FIRST_F]
FIRST = FIRST_F + FIRST_M
GENDER = {n: ("f" if n in FIRST_F else "m") for n in FIRST}
SURNAMES = """Anderson White Brown Smith Jones Miller Taylor Clark Lewis Walker Young King Wright Green Baker
Hill Scott Adams Turner Parker""".split()
# some first names come with surnames (so "Alice Anderson" and "Alice White" can share a context)
SURNAMED = FIRST[::4]

CITIES = """Paris Tokyo London Rome Berlin Madrid Seoul Sydney Vienna Oslo Austin Chicago Boston Dublin Lisbon
Prague Warsaw Athens Cairo Delhi Mumbai Lima Bogota Toronto Montreal Denver Seattle Miami Dallas Houston
Phoenix Munich Hamburg Milan Naples Venice Zurich Geneva Brussels Amsterdam Stockholm Helsinki Copenhagen
Budapest Istanbul Dubai Bangkok Manila Jakarta Beijing Shanghai Osaka Nairobi Lagos""".split()
COLOURS = "red green blue yellow brown black white purple orange pink grey gold".split()
PETS = "cat dog parrot rabbit hamster turtle snake horse goat fish mouse pony".split()
DRINKS = "tea coffee milk juice water cocoa lemonade soda wine beer cider smoothie".split()
JOBS = "doctor teacher nurse pilot baker chef farmer lawyer painter singer writer driver dentist plumber".split()
ITEMS = "car house bike boat piano laptop camera guitar tent kayak".split()

PROPS = {"city": CITIES, "hat": COLOURS, "eyes": COLOURS, "pet": PETS, "drink": DRINKS, "job": JOBS, "owns": ITEMS}

# fact templates: N = entity name, X = value. A leading-space value is always one token.
FACTS = {
    "city": ["N lives in X.", "Last year N moved to X. P enjoys living there.", "We know that N lives in X.",
             "N has lived in X for years.", "N's home is in X.", "N is living in X now.", "N lives in the city of X."],
    "hat": ["N has a X hat.", "N's hat is X.", "N wears a X hat.", "The hat that N wears is X."],
    "eyes": ["N has X eyes.", "N's eyes are X.", "The eyes of N are X."],
    "pet": ["N has a pet X.", "N's pet is a X.", "N keeps a X as a pet."],
    "drink": ["N likes to drink X.", "N's favourite drink is X.", "N always drinks X."],
    "job": ["N works as a X.", "N is a X.", "N's job is X.", "N has a job as a X."],
    "owns": ["N owns a X.", "N has a X.", "N is in possession of a X.", "N bought a X."],
}
# updates: later statements override earlier ones
UPDATES = {
    "city": ["Later, N moved to X.", "N now lives in X.", "Then N moved to X.", "N has since moved to X."],
    "hat": ["Later, N got a new X hat.", "Now N wears a X hat."],
    "eyes": ["N now wears lenses, so N's eyes are X.", "N now has X eyes."],
    "pet": ["Later, N got a pet X instead.", "N's pet is now a X."],
    "drink": ["N now prefers to drink X.", "N now likes to drink X."],
    "job": ["Later, N became a X.", "N now works as a X."],
    "owns": ["Later, N sold it and bought a X.", "N now owns a X."],
}
# updates never begin like a bare query ("N's hat is"), so a restated fact prefix is always a question
# query templates: the text before the answer; the answer is " X" (one token)
QUERIES = {
    "city": ["Where does N live? N lives in", "Q: Where does N live? A:", "Q: In which city does N live? A:",
             "Where does N live? The answer is", "N lives in", "N's home is in", "N is living in"],
    "hat": ["N's hat is", "Q: What colour is N's hat? A:", "What colour is N's hat? N's hat is",
            "Q: Which colour is N's hat? A:", "What colour is N's hat? The answer is"],
    "eyes": ["N's eyes are", "Q: What colour are N's eyes? A:", "What colour are N's eyes? N's eyes are",
             ],
    "pet": ["N's pet is a", "Q: What pet does N have? A:", "What pet does N have? N has a pet"],
    "drink": ["N's favourite drink is", "Q: What does N like to drink? A:", "N likes to drink"],
    "job": ["N works as a", "Q: What is N's job? A:", "What does N do? N works as a", "N's job is"],
    "owns": ["N owns a", "Q: What does N own? A:", "What does N own? N owns a"],
}
BARE_QUERIES = {p: [q for q in qs if q.startswith("N")] for p, qs in QUERIES.items()}
# held-out query templates (eval only; built from words the corpus uses elsewhere)
HELDOUT_QUERIES = {
    "city": ["Which city does N live in? N lives in", "Q: Which city does N live in? A:"],
    "hat": ["What is the colour of N's hat? N's hat is"],
}
QUESTIONS = {  # chat-form questions
    "city": ["Where does N live?", "In which city does N live?"],
    "hat": ["What colour is N's hat?"],
    "eyes": ["What colour are N's eyes?"],
    "pet": ["What pet does N have?"],
    "drink": ["What does N like to drink?"],
    "job": ["What is N's job?"],
    "owns": ["What does N own?"],
}
ANSWER_SENT = {  # chat answers: text before the value
    "city": "N lives in", "hat": "N's hat is", "eyes": "N's eyes are", "pet": "N's pet is a",
    "drink": "N's favourite drink is", "job": "N works as a", "owns": "N owns a",
}
FILLER = """The weather was mild that day.
It was a quiet morning in the town.
The shops opened early and the streets were busy.
Some people like to walk in the park after lunch.
The train was late again, as it often is.
There is a small cafe near the station.
The river runs through the middle of the town.
Many people read the news in the morning.
The market sells fresh bread and fruit.
It rained for most of the afternoon.
The library is open every day of the week.
A new bridge was built over the river last spring.
The children played in the garden until dinner.
Nobody knew what time the meeting would start.
The old clock in the square still works.
There was a concert in the park on Sunday.
The bus stops right outside the school.
In the evening the lights of the city came on.
The museum has a large collection of old maps.
Everyone agreed that the soup was very good.
The road to the village is long and narrow.
A cold wind came down from the hills.
The festival lasts for three days every summer.
Most of the houses on the street are painted.
The post office closes at five in the afternoon.
It is said that the lake freezes every winter.
The team won the game by two points.
A few birds were singing in the trees.
The office was quiet because it was a holiday.
Later that week the sun finally came out.""".split("\n")
GENERIC = ["The answer is X.", "The correct answer is X.", "The value is X.", "It is X."]
FREQ_WORDS = ("the a an and of to in is was it that for on with as at by from this there be are has have "
              "had who what where which when does do did not yes no some many more most very new old now "
              "later then last year years day week").split()


def name_of(first, surname):
    return first if surname is None else f"{first} {surname}"


def heldout_combo(name, prop, value):
    """True for ~10% of (name, property, value) combinations: never stated in training documents."""
    return zlib.crc32(f"{name}|{prop}|{value}".encode()) % 10 == 0


def pronoun(first):
    return "She" if GENDER[first] == "f" else "He"


class World:
    """Samples documents. mode='train' avoids held-out combinations; mode='eval' uses only them."""

    def __init__(self, rng: random.Random, mode="train"):
        self.rng = rng
        self.mode = mode

    def entity(self, used):
        rng = self.rng
        for _ in range(100):
            first = rng.choice(FIRST)
            surname = rng.choice(SURNAMES) if (first in SURNAMED and rng.random() < 0.5) else None
            nm = name_of(first, surname)
            if nm in used:
                continue
            # a bare first name and a surnamed one with the same first name would be ambiguous
            if surname is None and any(u.split(" ")[0] == first for u in used):
                continue
            if surname is not None and first in used:
                continue
            return first, surname
        raise RuntimeError("could not sample entity")

    def value(self, name, prop, avoid=()):
        rng = self.rng
        vals = PROPS[prop]
        for _ in range(200):
            v = rng.choice(vals)
            if v in avoid:
                continue
            if (self.mode == "train") == heldout_combo(name, prop, v):
                continue
            return v
        return None


def fill(t, name, value=None, first=None):
    """Template placeholders are the standalone capitals N (name), X (value), P (pronoun)."""
    t = re.sub(r"\b([NXP])\b", r"{\1}", t)
    if value is not None and value[0] in "aeiou":
        t = t.replace(" a {X}", " an {X}")
    return t.format(N=name, X=value if value is not None else "{X}", P=pronoun(first) if first else "{P}")


def query_text(t, name, value):
    """Query prefix; 'a' becomes 'an' before a vowel-initial answer."""
    q = fill(t, name)
    if value[0] in "aeiou" and q.endswith(" a"):
        q = q + "n"
    return q


def split_answer(text_before, value):
    """Query text + answer: segments (text, is_answer). The answer token is ' value'."""
    return [(text_before, False), (" " + value, True)]


def gen_document(rng: random.Random, binding_heavy=False, mode="train"):
    """One training document as a list of (text, is_answer) segments (no leading/trailing token 0)."""
    w = World(rng, mode)
    if binding_heavy:
        n_ent = rng.choice([2, 2, 3, 3, 4, 5, 6, 7])
    else:
        n_ent = rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6, 7])
    kind = rng.random()
    if kind < 0.04 and not binding_heavy:
        v = rng.choice(rng.choice(list(PROPS.values())))
        t = rng.choice(GENERIC)
        i = t.index("X")
        return [(t[:i].rstrip(), False), (" " + v, True), (t[i + 1:], False)]
    # properties of this document; a same-property set makes distractors
    props_all = list(PROPS)
    if binding_heavy or rng.random() < 0.5:
        doc_props = [rng.choice(props_all)] if rng.random() < 0.6 else rng.sample(props_all, rng.randint(2, 3))
    else:
        doc_props = rng.sample(props_all, rng.randint(1, 4))
    used, ents = [], []
    for _ in range(n_ent):
        first, surname = w.entity(used)
        nm = name_of(first, surname)
        used.append(nm)
        facts = {}
        for p in doc_props:
            if rng.random() < (0.85 if len(doc_props) > 1 else 1.0) or not facts:
                # distractors: often force distinct values so the model must bind, sometimes share values
                taken = {e[2].get(p) for e in ents} if rng.random() < 0.8 else set()
                v = w.value(nm, p, avoid=taken)
                if v is not None:
                    facts[p] = v
        if not facts:
            used.pop()
            continue
        ents.append((first, nm, facts))
    if not ents:
        return [("It was a quiet day.", False)]

    sents = []
    for first, nm, facts in ents:
        ps = list(facts)
        rng.shuffle(ps)
        i = 0
        while i < len(ps):
            p = ps[i]
            if p == "hat" and i + 1 < len(ps) and ps[i + 1] == "eyes" and rng.random() < 0.5:
                sents.append(f"{nm} has a {facts['hat']} hat and {facts['eyes']} eyes.")
                i += 2
                continue
            sents.append(fill(rng.choice(FACTS[p]), nm, facts[p], first))
            i += 1
    if rng.random() < 0.5:
        rng.shuffle(sents)  # interleave entities; otherwise grouped by entity
    # updates (the later statement wins)
    if rng.random() < (0.3 if binding_heavy else 0.2):
        for _ in range(rng.randint(1, 2)):
            first, nm, facts = rng.choice(ents)
            p = rng.choice(list(facts))
            v = w.value(nm, p, avoid={facts[p]})
            if v is not None:
                facts[p] = v
                sents.append(fill(rng.choice(UPDATES[p]), nm, v, first))

    def filler(max_words):
        out, n = [], 0
        target = rng.randint(0, max_words)
        while n < target:
            s = rng.choice(FILLER)
            out.append(s)
            n += len(s.split()) + 1
        return out

    # queries
    qs = []
    n_q = rng.randint(1, 4) if not binding_heavy else rng.randint(2, 5)
    for _ in range(n_q):
        first, nm, facts = rng.choice(ents)
        p = rng.choice(list(facts))
        qs.append((first, nm, p, facts[p]))

    chat = rng.random() < 0.2
    segs = []
    fill_words = 130 if rng.random() < 0.35 else 0
    if chat:
        ctx = " ".join(sents)
        if fill_words:
            ctx = ctx + " " + " ".join(filler(fill_words))
        first_turn = True
        for first, nm, p, v in qs:
            q = fill(rng.choice(QUESTIONS[p]), nm)
            user = ("User: " + ctx + " " + q) if first_turn else ("User: " + q)
            segs.append(((("" if first_turn else "\n\n") + user + "\n\nAssistant: " + query_text(ANSWER_SENT[p], nm, v)), False))
            segs.append((" " + v, True))
            segs.append((".", False))
            first_turn = False
        return segs
    # prose: facts, optional filler between facts, filler before questions, queries
    text = []
    for s in sents:
        text.append(s)
        if fill_words and rng.random() < 0.15:
            text.extend(filler(fill_words // 3))
    if fill_words:
        text.extend(filler(fill_words))
    segs.append((" ".join(text), False))
    # half the time the first query is bare ("N's hat is"): the model must notice the fact was already stated
    bare_first = rng.random() < 0.5
    for i, (first, nm, p, v) in enumerate(qs):
        segs.append(("\n" if rng.random() < 0.3 else " ", False))
        tmpls = BARE_QUERIES[p] if bare_first and i == 0 else QUERIES[p]
        segs.append((query_text(rng.choice(tmpls), nm, v), False))
        segs.append((" " + v, True))
        segs.append(("." if rng.random() < 0.8 else ".\n", False))
    return segs


def all_words():
    """Every word/name/value the generator can emit (for the vocabulary)."""
    words = set(FIRST) | set(SURNAMES) | set(FREQ_WORDS)
    for vals in PROPS.values():
        words |= set(vals)
    texts = []
    for d in (FACTS, UPDATES, QUERIES, HELDOUT_QUERIES, QUESTIONS):
        for ts in d.values():
            texts.extend(ts)
    texts.extend(ANSWER_SENT.values())
    texts.extend(FILLER)
    texts.extend(GENERIC)
    texts.append("She enjoys living there. He enjoys living there. User: Assistant: It was a quiet day.")
    texts.append("N has a X hat and X eyes.")
    for t in texts:
        for m in re.findall(r"[A-Za-z]+", t):
            if m not in ("N", "X", "P"):
                words.add(m)
    return sorted(words)


def doc_text(segs):
    return "".join(t for t, _ in segs)


if __name__ == "__main__":
    import sys
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for i in range(8):
        print(repr(doc_text(gen_document(rng, binding_heavy=(i >= 4)))))
        print()
    print(len(FIRST), "first names;", len(CITIES), "cities")
