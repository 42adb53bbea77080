"""A hand-written, BSNLP-format mini corpus (two topics, three languages); no BSNLP data is copied."""

from pathlib import Path

HEADER = "{id}\n{lang}\n2024-01-01\nhttp://example.org/{id}\n"
COLUMNS = "docId,sentenceId,tokenId,text,ner,clID\n"

# (topic, lang, file stem, doc id, title + body, [(token, tag, cluster)])
DOCS = [
    (
        "brexit",
        "pl",
        "brexit_pl.txt_file_1",
        "pl-1",
        "Farage o Brexitu\n\nNigel Farage powiedział, że „Wielka Brytania” wyjdzie. Farage'a poparł Johnson.",
        [
            ("Farage", "B-PER", "PER-Nigel-Farage"),
            ("o", "O", ""),
            ("Brexitu", "B-EVT", "EVT-Brexit"),
            ("Nigel", "B-PER", "PER-Nigel-Farage"),
            ("Farage", "I-PER", "PER-Nigel-Farage"),
            ("powiedział", "O", ""),
            (",", "O", ""),
            ("że", "O", ""),
            ('"', "O", ""),
            ("Wielka", "B-LOC", "GPE-Great-Britain"),
            ("Brytania", "I-LOC", "GPE-Great-Britain"),
            ('"', "O", ""),
            ("wyjdzie", "O", ""),
            (".", "O", ""),
            ("Farage'a", "B-PER", "PER-Nigel-Farage"),
            ("poparł", "O", ""),
            ("Johnson", "B-PER", "PER-Boris-Johnson"),
            (".", "O", ""),
        ],
    ),
    (
        "brexit",
        "ru",
        "brexit_ru.txt_file_2",
        "ru-2",
        "Фараж и Брексит\n\nНайджел Фараж считает, что Великобритания выиграет.",
        [
            ("Фараж", "B-PER", "PER-Nigel-Farage"),
            ("и", "O", ""),
            ("Брексит", "B-EVT", "EVT-Brexit"),
            ("Найджел", "B-PER", "PER-Nigel-Farage"),
            ("Фараж", "I-PER", "PER-Nigel-Farage"),
            ("считает", "O", ""),
            (",", "O", ""),
            ("что", "O", ""),
            ("Великобритания", "B-LOC", "GPE-Great-Britain"),
            ("выиграет", "O", ""),
            (".", "O", ""),
            ("ЛИШНИЙ", "O", ""),  # not in the text: must be counted as a failed token
        ],
    ),
    (
        "ec",
        "cs",
        "file_1_cz",
        "1",
        "Komise a Google\n\nEvropská komise pokutovala Google. Podle Evropské komise Google porušil zákon.",
        [
            ("Komise", "B-ORG", "1"),
            ("a", "O", ""),
            ("Google", "B-ORG", "2"),
            ("Evropská", "B-ORG", "1"),
            ("komise", "I-ORG", "1"),
            ("pokutovala", "O", ""),
            ("Google", "B-ORG", "2"),
            (".", "O", ""),
            ("Podle", "O", ""),
            ("Evropské", "B-ORG", "1"),
            ("komise", "I-ORG", "1"),
            ("Google", "B-ORG", "2"),
        ],
    ),
]


def write_corpus(root: Path) -> Path:
    for topic, lang, stem, doc_id, text, tokens in DOCS:
        raw = root / topic / "raw" / lang
        merged = root / topic / "merged" / lang
        raw.mkdir(parents=True, exist_ok=True)
        merged.mkdir(parents=True, exist_ok=True)
        header = HEADER.format(id=doc_id, lang=lang)
        (raw / f"{stem}.txt").write_text(header + text + "\n", encoding="utf-8")
        rows = [COLUMNS]
        for i, (token, tag, cluster) in enumerate(tokens, 1):
            quoted = '""""' if token == '"' else (f'"{token}"' if "," in token else token)
            rows.append(f"{doc_id},0,{i},{quoted},{tag},{cluster}\n")
        (merged / f"{stem}.csv").write_text("".join(rows), encoding="utf-8")
    return root
