"""
The embedded world: synthetic biographies in the style of bioS (Allen-Zhu & Li, Physics of Language
Models 3.1). N people with unique full names and six attributes, one canonical document each, six QA
pairs each, and people split into train / dev / test. Deterministic from --seed, plain Python.

    python data/bios/prepare.py                       # 200 people -> data/bios/{docs,qa}.jsonl
    python data/bios/prepare.py --people 2000 --seed 1 --out_dir /tmp/bios
    python data/bios/prepare.py --paraphrases 4       # also docs_para.jsonl (4 rewritten copies each)
    python data/bios/prepare.py --gradual             # also qa_gradual.jsonl: README's Table 2 data, for gradual.py

The first sentence names the person by full name and the others say He / She, as in bioS (with
--fullname every sentence names the person: an easier world, where extraction is nearly free). No answer is
a substring of another answer of the same relation, so exact match is unambiguous (the pools are filtered for
that below).
"""
import argparse
import json
import os
import random

# -----------------------------------------------------------------------------
# pools (about the sizes of the bioS paper)
FIRST_HE = """Aaron Adrian Ambrose Anders Ansel Arlo August Basil Benedict Blaise Brennan Bruno Caius Cassius
Cecil Cedric Conrad Cyrus Damon Darius Desmond Dorian Edgar Elias Emeric Enzo Ezra Fabian Felix Florian Gavin
Gideon Hector Hugo Ignatius Ivan Jasper Kasimir Lachlan Laszlo Levi Lionel Lorcan Luca Magnus Malcolm Marcel
Matteo Milo Nestor Nico Oren Osric Otto Pascal Perrin Quentin Rafferty Roland Rufus Silas Soren Stellan
Tarquin Theron Tobias Valentin Viggo Wendell Xavier Yusuf Zeno""".split()
FIRST_SHE = """Abigail Alice Alma Amara Amelia Andrea Anika Astrid Aurora Beatrix Bianca Brielle Calla Camille
Carmen Celeste Clara Cleo Colette Cora Dahlia Daphne Delia Edith Elise Eloise Esme Fern Fiona Freya Gemma
Greta Hazel Helena Ida Imogen Ines Ingrid Iris Isadora Juno Keira Leona Liesel Lydia Mabel Maisie Marguerite
Maxine Mina Mirabel Nadia Naomi Nina Noor Octavia Odette Orla Paloma Penelope Petra Philippa Rhea Rosalind
Sabine Selma Solene Sybil Tamsin Tessa Thea Ursula Vera Vivian Wilhelmina Yara Zara Zola""".split()
MIDDLE = """Ash Bay Blake Brook Cade Clay Dale Dane Drew Ellis Emery Flynn Gray Hale Hart Hayes Jade
Jay Joy Jude Kent Lane Lee Lark Lynn Mae Marsh Max Neve Noel Page Paige Quill Rae Reed Reese Rory Rose Ruth
Sage Shay Skye Sloane Tate Tove West Wren Wynn""".split()
LAST = """Abernathy Ackerly Aldridge Ashdown Bancroft Barlowe Beaumont Blackwood Bramley Brightwater
Calloway Carmody Castellan Chadwick Clifton Corbett Crane Dalloway Davenport Delacroix Drummond Dunmore
Eastwood Ellsworth Everhart Fairbanks Falconer Farrington Fenwick Fitzroy Fontaine Garrick Gladstone Goodwin
Greenleaf Halloway Hargrove Hartley Hathaway Holloway Huxley Ingram Iverson Jardine Kavanagh Kendrick
Kingsley Lachance Langford Larkspur Lindqvist Lockhart Loxley Mallory Marchetti Merriweather Montague
Moreau Nakamura Northcott Oakhurst Okonkwo Ostrander Pemberton Pendleton Prescott Quimby Radcliffe Ravensworth
Redfern Rowntree Saltonstall Sandoval Sheffield Sinclair Stanhope Sterling Stroud Sutherland Thackeray
Thistlewood Thorne Trevelyan Underhill Vance Vandermeer Varga Wainwright Waverly Westbrook Whitlock Wilder
Winslow Wolcott Yardley Zellweger Ainsworth Bellamy Birchall Cavendish Delaney Espinoza Galloway Hawthorne
Kowalski Lindgren Marlowe Novak Orlov Pellegrino Quintana Rasmussen Salazar Takahashi Ueda Valdez Whitaker
Yamamoto Zamora""".split()
CITIES = """Aberdeen, Akron, Albuquerque, Alexandria, Amarillo, Amsterdam, Anchorage, Antwerp, Asheville,
Athens, Atlanta, Auckland, Austin, Bakersfield, Baltimore, Bangor, Barcelona, Baton Rouge, Belfast, Bergen,
Berlin, Bilbao, Birmingham, Boise, Bologna, Bordeaux, Boston, Boulder, Bratislava, Bremen, Brighton,
Brisbane, Bristol, Brussels, Budapest, Buffalo, Burlington, Cairns, Calgary, Cambridge, Canberra, Cardiff,
Charleston, Charlotte, Chattanooga, Chicago, Cincinnati, Cleveland, Cologne, Columbus, Copenhagen, Cork,
Dallas, Dayton, Denver, Des Moines, Detroit, Dresden, Dublin, Duluth, Dundee, Durham, Edinburgh, Edmonton,
El Paso, Eugene, Fargo, Florence, Fort Worth, Frankfurt, Fresno, Galway, Geneva, Genoa, Ghent, Glasgow,
Gothenburg, Granada, Graz, Green Bay, Halifax, Hamburg, Hanover, Harrisburg, Hartford, Heidelberg, Helsinki,
Honolulu, Houston, Indianapolis, Innsbruck, Ithaca, Jacksonville, Juneau, Kalamazoo, Kingston, Knoxville,
Krakow, Lancaster, Las Vegas, Leeds, Leipzig, Lexington, Lille, Lincoln, Lisbon, Little Rock, Liverpool,
Ljubljana, Louisville, Lubbock, Lyon, Madison, Madrid, Malaga, Manchester, Marseille, Melbourne, Memphis,
Miami, Milan, Milwaukee, Minneapolis, Missoula, Mobile, Montpellier, Montreal, Munich, Nantes, Naples,
Nashville, New Orleans, Nice, Norfolk, Nottingham, Nuremberg, Oakland, Odessa, Omaha, Orlando, Oslo, Ottawa,
Oxford, Palermo, Pasadena, Perth, Philadelphia, Phoenix, Pittsburgh, Porto, Portland, Prague, Providence,
Quebec, Raleigh, Reno, Richmond, Riga, Rochester, Rotterdam, Sacramento, Salem, Salt Lake City, Salzburg,
San Antonio, San Diego, Santa Fe, Savannah, Seattle, Seville, Sheffield, Spokane, Stockholm, Strasbourg,
Stuttgart, Syracuse, Tallinn, Tampa, Tucson, Tulsa, Turin, Utrecht, Valencia, Vancouver, Venice, Verona,
Vienna, Vilnius, Warsaw, Wichita, Winnipeg, Worcester, Wroclaw, Zagreb, Zurich""".replace("\n", " ")
CITIES = [c.strip() for c in CITIES.split(",")]
STEMS = """Ashford Bellmont Briarcliff Carrow Dunhaven Eldermoor Fairhaven Glenwood Harrowgate Highmoor
Kestrel Lakemont Larchmont Maplewood Northbridge Oakridge Pinecrest Queensbury Ravenhill Redcliff Riverside
Rosewood Silverlake Southport Stonebridge Thornbury Westfield Whitmore Wildmere Woodbury Alderton Blackstone
Cedarville Crestview Deepwater Eastgate Falkirk Foxglove Greystone Hollowell Ironwood Juniper Kingsbridge
Lindenhurst Meadowbrook Millbrook Norwood Ormsby Pembrook Quarry Rockport Sandhurst Tidewater Upton
Valemont Wexford Yarrow Ashbury Bramblewood Coldwater Dovecote Elmsworth Fernhill Goldcrest Hazelwood
Ivywood Lakeshore Marlborough Newhaven Oldcastle""".split()
UNIVERSITIES = [f.format(s) for s in STEMS for f in ("University of {}", "{} University",
                                                      "{} Institute of Technology", "{} College")]
EMPLOYERS = [f"{s} {suf}" for s in STEMS for suf in ("Industries", "Labs", "Systems", "Group",
                                                     "Dynamics")]
MAJORS = """Accounting, Aerospace Engineering, Agricultural Science, Anthropology, Archaeology,
Architecture, Art History, Astronomy, Biochemistry, Bioinformatics, Biomedical Engineering, Botany,
Business Administration, Chemical Engineering, Civil Engineering, Classics, Cognitive Science,
Communications, Comparative Literature, Computer Science, Construction Management, Criminology, Dance,
Data Science, Dentistry, Dietetics, Ecology, Econometrics, Education, Electrical Engineering, Energy Policy,
English Literature, Entomology, Environmental Science, Epidemiology, Ethnomusicology, Film Studies, Finance,
Fine Arts, Forestry, Game Design, Genetics, Geography, Geology, Graphic Design, Hospitality Management,
Hydrology, Industrial Design, Information Systems, International Relations, Journalism, Kinesiology,
Landscape Architecture, Law, Library Science, Linguistics, Logistics, Marine Biology, Marketing, Materials
Science, Mathematics, Mechanical Engineering, Medicine, Meteorology, Microbiology, Mining Engineering,
Museum Studies, Music Theory, Nanotechnology, Naval Architecture, Neuroscience, Nuclear Engineering,
Nursing, Nutrition, Oceanography, Operations Research, Optometry, Paleontology, Pharmacology, Philosophy,
Photography, Physical Therapy, Physics, Political Science, Psychology, Public Health, Public Policy,
Radiology, Religious Studies, Robotics, Sociology, Software Engineering, Soil Science, Statistics, Supply Chain
Management, Theater, Toxicology, Urban Planning, Veterinary Science, Viticulture, Zoology""".replace("\n", " ")
MAJORS = [m.strip() for m in MAJORS.split(",")]
MONTHS = "January February March April May June July August September October November December".split()
RELATIONS = ["birth_date", "birth_city", "university", "major", "employer", "employer_city"]

# one canonical sentence per attribute (the document), several rewrites for --paraphrases; {subj} is the
# full name in a document's first sentence and He / She after it ({poss}: "Ada Lee Moss's" / "His" / "Her")
TEMPLATES = {
    "birth_date": ["{subj} was born on {birth_date}.", "{subj} came into the world on {birth_date}.",
                   "{poss} birthday is {birth_date}.", "{subj} celebrates a birthday on {birth_date}."],
    "birth_city": ["{subj} was born in {birth_city}.", "{subj} spent the early years in {birth_city}.",
                   "{poss} hometown is {birth_city}.", "{subj} grew up in {birth_city}."],
    "university": ["{subj} studied at {university}.", "{subj} graduated from {university}.",
                   "{subj} received an education at {university}.", "{poss} alma mater is {university}."],
    "major": ["{subj} majored in {major}.", "{subj} completed a degree in {major}.",
              "{poss} field of study was {major}.", "{subj} specialized in {major}."],
    "employer": ["{subj} worked for {employer}.", "{subj} was employed by {employer}.",
                 "{subj} had a job at {employer}.", "{poss} employer was {employer}."],
    "employer_city": ["{subj} worked in {employer_city}.", "{subj} had an office in {employer_city}.",
                      "{poss} workplace was in {employer_city}.", "{subj} commuted to work in {employer_city}."],
}
QUESTIONS = {
    "birth_date": "What is the birth date of {name}?", "birth_city": "Which city was {name} born in?",
    "university": "Which university did {name} attend?", "major": "What did {name} study?",
    "employer": "Which company did {name} work for?", "employer_city": "Which city did {name} work in?",
}
# -----------------------------------------------------------------------------

def unambiguous(pool):
    """Drop values that are a substring of another value (case-insensitive): exact match stays unambiguous."""
    low = [v.lower() for v in pool]
    return [v for v, l in zip(pool, low) if not any(l != o and l in o for o in low)]

def make_people(n, rng):
    cities, universities, employers, majors = (unambiguous(p) for p in (CITIES, UNIVERSITIES, EMPLOYERS, MAJORS))
    employer_city = {e: rng.choice(cities) for e in employers}  # the employer fixes the city
    if n > min(len(FIRST_HE), len(FIRST_SHE)) * len(MIDDLE) * len(LAST):
        raise ValueError(f"--people {n} is more than the name pools allow")
    names, people = set(), []
    while len(people) < n:
        he = rng.random() < 0.5
        name = f"{rng.choice(FIRST_HE if he else FIRST_SHE)} {rng.choice(MIDDLE)} {rng.choice(LAST)}"
        if name in names:
            continue
        names.add(name)
        employer = rng.choice(employers)
        people.append(dict(name=name, he=he, employer=employer, employer_city=employer_city[employer],
                           birth_date=f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(1900, 2099)}",
                           birth_city=rng.choice(cities), university=rng.choice(universities),
                           major=rng.choice(majors)))
    return people

def document(p, templates, fullname):
    """Sentences in the given order; the full name in the first (in every one with --fullname)."""
    out = []
    for i, (rel, template) in enumerate(templates):
        named = i == 0 or fullname
        subj, poss = (p["name"], p["name"] + "'s") if named else (("He", "His") if p["he"] else ("She", "Her"))
        out.append(template.format(subj=subj, poss=poss, **{rel: p[rel]}))
    return " ".join(out)

def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, path)  # atomic: a reader never sees half a file

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=200, help="number of people in the world")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, byte-identical files)")
    parser.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)), help="output folder")
    parser.add_argument("--split", type=float, nargs=3, default=[0.45, 0.10, 0.45], metavar=("TRAIN", "DEV", "TEST"),
                        help="fractions of people in the train / dev / test splits")
    parser.add_argument("--paraphrases", type=int, default=0,
                        help="also write docs_para.jsonl with P rewrites per person")
    parser.add_argument("--fullname", action="store_true",
                        help="the full name in every sentence (bioS fullname; easier)")
    parser.add_argument("--gradual", action="store_true",
                        help="also write qa_gradual.jsonl: the held-out (test) people split in "
                        "halves, train (probed and fine-tuned by gradual.py) and test, plus the dev people")
    args = parser.parse_args(argv)
    if args.people < 3:
        parser.error("--people must be at least 3 (one per split)")
    rng = random.Random(args.seed)
    people = make_people(args.people, rng)
    n_train = round(args.split[0] / sum(args.split) * len(people))
    n_dev = max(1, round(args.split[1] / sum(args.split) * len(people)))
    docs, qa, para = [], [], []
    for i, p in enumerate(people):
        doc_id = f"p{i:05d}"
        split = "train" if i < n_train else "dev" if i < n_train + n_dev else "test"
        facts = {r: p[r] for r in RELATIONS}
        text = document(p, [(r, TEMPLATES[r][0]) for r in RELATIONS], args.fullname)
        docs.append({"id": doc_id, "text": text, "facts": facts})
        qa += [{"id": f"{doc_id}/{r}", "question": QUESTIONS[r].format(**p), "answer": p[r], "relation": r,
                "doc_id": doc_id, "split": split} for r in RELATIONS]
        for j in range(args.paraphrases):  # other templates and a shuffled sentence order: the paraphrase arm
            order = rng.sample(RELATIONS, len(RELATIONS))
            text = document(p, [(r, rng.choice(TEMPLATES[r][1:])) for r in order], args.fullname)
            para.append({"id": f"{doc_id}#para{j}", "text": text, "facts": facts})
    os.makedirs(args.out_dir, exist_ok=True)
    write_jsonl(os.path.join(args.out_dir, "docs.jsonl"), docs)
    write_jsonl(os.path.join(args.out_dir, "qa.jsonl"), qa)
    if args.paraphrases:
        write_jsonl(os.path.join(args.out_dir, "docs_para.jsonl"), para)
    # a base model trained on docs + train QA knows the test people's facts only partly: gradual's pool
    if args.gradual:
        write_jsonl(os.path.join(args.out_dir, "qa_gradual.jsonl"), [{**it, "split": "dev" if it["split"] == "dev" else
                    ("train", "test")[int(it["doc_id"][1:]) % 2]} for it in qa if it["split"] in ("dev", "test")])
    print(f"wrote {len(docs)} documents, {len(qa)} QA items{f', {len(para)} paraphrases' if para else ''} "
          f"({n_train} train / {n_dev} dev / {len(people) - n_train - n_dev} test people) to {args.out_dir}")

if __name__ == "__main__":
    main()
