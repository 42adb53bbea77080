"""BSNLP reading and alignment (linking/bsnlp.py) and the evaluation loop (linking/evaluation.py)."""

from linking.bsnlp import read_bsnlp
from linking.evaluation import evaluate_documents, score_assignments
from linking.linker import Linker
from linking.settings import LinkSettings
from tests.linking.bsnlp_fixture import write_corpus
from tests.linking.test_linker import DIM, SurfaceHashEmbedder


def test_tokens_align_to_character_offsets(tmp_path):
    docs, stats = read_bsnlp(write_corpus(tmp_path), ["brexit", "ec"])
    assert [d.external_id for d in docs] == [
        "brexit/pl/brexit_pl.txt_file_1",
        "brexit/ru/brexit_ru.txt_file_2",
        "ec/cs/file_1_cz",
    ]
    pl = docs[0]
    surfaces = [(pl.text[m.start : m.end], m.label, m.cluster) for m in pl.mentions]
    assert surfaces == [
        ("Farage", "PER", "PER-Nigel-Farage"),
        ("Brexitu", "EVT", "EVT-Brexit"),
        ("Nigel Farage", "PER", "PER-Nigel-Farage"),
        ("Wielka Brytania", "LOC", "GPE-Great-Britain"),  # the quotes around it are „ ” in the text
        ("Farage'a", "PER", "PER-Nigel-Farage"),
        ("Johnson", "PER", "PER-Boris-Johnson"),
    ]
    assert stats.tokens_failed == 1 and stats.mentions_dropped == 0  # the extra Russian token
    assert [m.cluster for m in docs[2].mentions][:2] == ["ec:1", "ec:2"]  # numeric ids are per topic
    assert docs[2].mentions[0].topic_local and not pl.mentions[0].topic_local


def test_score_assignments_reports_languages_and_cross_language():
    keys = ["A", "A", "B", "B"]
    report = score_assignments(keys, [1, 1, 2, 3], ["pl", "ru", "pl", "pl"])
    assert set(report["per_language"]) == {"pl", "ru"}
    assert report["cross_language"]["counts"]["mentions"] == 2  # only cluster A spans two languages
    assert report["cross_language"]["b3"]["f1"] == 1.0


def test_topic_scoped_and_global_id_views_forgive_topic_local_ids():
    # One commission, named in topic "brexit" and by a numeric topic-local id in topic "ec": linking
    # the three mentions together is right, but the raw pooled score calls it a false merge.
    keys = ["ORG-European-Commission", "ORG-European-Commission", "ec:1", "PER-X", "PER-X"]
    responses = [7, 7, 7, 8, 9]
    topics = ["brexit", "brexit", "ec", "brexit", "ec"]
    local = [False, False, True, False, False]
    report = score_assignments(keys, responses, ["pl"] * 5, topics, local)
    assert report["overall"]["b3"]["precision"] < 1.0
    assert report["topic_scoped"]["b3"]["precision"] == 1.0
    assert report["global_ids"]["counts"]["mentions"] == 4
    assert report["global_ids"]["b3"]["precision"] == 1.0
    assert report["global_ids"]["b3"]["recall"] < 1.0, "PER-X split across topics is still a miss"
    assert "topic_scoped" not in score_assignments(keys, responses, ["pl"] * 5, ["ec"] * 5, local)


def _evaluate_fixture(tmp_path, **options):
    """Evaluate the hand-written brexit + ec corpus with name-only linking (hash vectors mean nothing)."""
    docs, stats = read_bsnlp(write_corpus(tmp_path / "data"), ["brexit", "ec"])
    settings = LinkSettings(vector_weight=0.0, link_threshold=0.9, cross_script_cosine=0.0)
    return evaluate_documents(
        docs,
        lambda store: Linker(store, settings=settings, embedder=SurfaceHashEmbedder()),
        DIM,
        alignment=stats,
        store_dir=tmp_path,
        **options,
    )


def test_evaluate_documents_with_gold_mentions(tmp_path):
    report = _evaluate_fixture(tmp_path)
    assert report["mentions"]["scored"] == report["mentions"]["gold"] == 16
    assert report["ingest"]["documents"] == 3 and report["alignment"]["tokens_failed"] == 1
    # Farage, Brexit and Great Britain are linked across Polish and Russian; everything else is right.
    assert report["cross_language"]["b3"]["f1"] == 1.0
    assert report["overall"]["b3"]["f1"] == 1.0


def test_evaluate_documents_one_store_per_topic(tmp_path):
    report = _evaluate_fixture(tmp_path, per_topic=True)
    assert report["ingest"]["store_per_topic"] and report["mentions"]["scored"] == 16
    # Entity ids restart in each store, so they are told apart by topic: still a perfect clustering.
    assert report["overall"]["b3"]["f1"] == 1.0 and report["overall"]["counts"]["system_clusters"] == 6
