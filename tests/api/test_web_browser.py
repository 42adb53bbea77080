"""The web page in a real browser (issue 17): Debian's Chromium driven by Playwright against a real
``spanlink serve`` on 127.0.0.1 with a real store.

Playwright's own browser download cannot be reached here, so the system Chromium is launched by path
(``scripts/setup --dev`` installs it as root). Without Playwright or Chromium these tests skip — except
in CI (``CI=true``), where they must run. Screenshots of every page land in ``test-artifacts/web/``
(git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import API_KEY, AUTH, REPO, free_port, ingest_spans, wait_until_serving

CHROMIUM = os.environ.get("SPANLINK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = REPO / "test-artifacts" / "web"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM} (scripts/setup --dev installs it as root)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


class Tab:
    """A page in its own browser context, recording every JavaScript dialog (an XSS would open one)."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def give_key_if_asked(self) -> None:
        """The service has an API key: the first write asks for it (then it is kept for the tab)."""
        box = self.page.locator("#key-box")
        with contextlib.suppress(Exception):
            box.wait_for(state="visible", timeout=3000)
        if box.is_visible():
            self.page.fill("#key-input", API_KEY)
            self.page.click("#key-box button[type=submit]")


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    opened = Tab(browser)
    yield opened
    assert opened.dialogs == [], f"a dialog opened: {opened.dialogs}"
    assert opened.errors == [], f"JavaScript errors: {opened.errors}"
    opened.context.close()


def _ingest(url: str, doc_id: str, text: str, spans: list[tuple[str, str]], **extra) -> dict:
    with httpx.Client(base_url=url, timeout=60) as client:
        return ingest_spans(client, doc_id, text, spans, **extra)


def test_try_it_highlights_the_spans_at_their_offsets_and_ingests(tab, live_server):
    text = "🎉 Angela Merkel met Emmanuel Macron in Paris on Monday. Straße & <b>Ünïcödé</b> in Zürich!"
    expected = httpx.post(f"{live_server}/v1/link", json={"text": text}, timeout=60).json()["mentions"]
    assert expected, "the tiny model found nothing to highlight: pick another text"
    page = tab.page
    page.goto(f"{live_server}/")
    page.fill("#try-text", text)
    page.click("#try-form button[type=submit]")
    page.wait_for_function("document.getElementById('try-status').textContent.includes('found')")
    marks = page.eval_on_selector_all(
        "#try-result mark.ent",
        "els => els.map(e => [Number(e.dataset.start), Number(e.dataset.end),"
        " e.firstChild.textContent, e.dataset.label])",
    )
    # Offsets count code points (the emoji is one); the highlighted text is exactly text[start:end].
    assert marks == [[m["start"], m["end"], text[m["start"] : m["end"]], m["label"]] for m in expected]
    shown = page.evaluate(
        """() => { let out = ''; const walk = (n) => { for (const c of n.childNodes) {
             if (c.nodeType === 3) out += c.textContent;
             else if (!c.classList.contains('ent-label') && !c.classList.contains('tip')) walk(c); } };
           walk(document.getElementById('try-result')); return out; }"""
    )
    assert shown == text  # everything else stays in place, as text (the <b> too)
    first = page.locator("#try-result mark.ent").first
    first.focus()  # keyboard: the tooltip shows label, score and what it would link to
    tip = first.locator(".tip")
    assert tip.is_visible() and expected[0]["label"] in tip.inner_text() and "score" in tip.inner_text()
    tab.shot("try-it")
    toggle = page.locator(f"#toggles input[data-label='{expected[0]['label']}']")
    toggle.uncheck()
    assert "off" in (first.get_attribute("class") or "")
    toggle.check()
    page.fill("#ingest-id", "try-it-1")
    page.fill("#ingest-source", "browser test")
    page.click("#ingest-form button[type=submit]")
    tab.give_key_if_asked()
    page.wait_for_url(re.compile(r"/documents/try-it-1$"))
    assert "Stored document try-it-1" in page.locator("#flash").inner_text()
    stored = httpx.get(f"{live_server}/v1/documents/try-it-1").json()
    assert stored["metadata"] == {"source": "browser test"} and stored["text"] == text


def test_a_document_page_mention_links_to_its_entity_page(tab, live_server):
    stored = _ingest(
        live_server,
        "web-en-1",
        "Angela Merkel met Emmanuel Macron in Paris.\n\nThey spoke about Europe.",
        [("Angela Merkel", "PER"), ("Emmanuel Macron", "PER"), ("Paris", "LOC")],
        metadata={"source": "wire", "section": "politics"},
    )
    merkel = stored["mentions"][0]["entity_id"]
    page = tab.page
    page.goto(f"{live_server}/documents")
    assert page.locator("a", has_text="web-en-1").count() == 1
    tab.shot("documents")
    page.goto(f"{live_server}/documents/web-en-1")
    assert page.locator("#doc-text a.ent").count() == 3
    assert page.locator("td", has_text="politics").count() == 1  # metadata shown
    tab.shot("document")
    page.locator("#doc-text a.ent", has_text="Angela Merkel").click()
    page.wait_for_url(re.compile(rf"/entities/{merkel}$"))
    assert "Angela Merkel" in page.locator("h1").inner_text()
    assert page.locator("#kwic a.src", has_text="web-en-1").count() == 1


def test_an_entity_mentioned_in_two_languages_lists_both_contexts(tab, live_server):
    en = _ingest(live_server, "web-en-2", "Vladimir Putin arrived in Moscow.", [("Vladimir Putin", "PER")])
    ru = _ingest(live_server, "web-ru-2", "Владимир Путин прибыл в Москву.", [("Владимир Путин", "PER")])
    putin, other = en["mentions"][0]["entity_id"], ru["mentions"][0]["entity_id"]
    if other != putin:  # linking kept the scripts apart (a tiny random model): one entity for the page
        assert httpx.post(
            f"{live_server}/v1/entities/{putin}/merge", json={"other": other}, headers=AUTH
        ).is_success
    page = tab.page
    page.goto(f"{live_server}/entities/{putin}")
    lines = page.locator("#kwic li")
    texts = [" ".join(lines.nth(i).inner_text().split()) for i in range(lines.count())]
    assert any("Vladimir Putin arrived in Moscow." in t and "web-en-2" in t for t in texts), texts
    assert any("Владимир Путин прибыл в Москву." in t and "web-ru-2" in t for t in texts), texts
    headings = page.locator("#aliases-title ~ h3").all_inner_texts()
    assert "Latin" in headings and "Cyrillic" in headings
    tab.shot("entity")
    # The search ignores script: a Latin query lists the entity with its Cyrillic alias.
    page.goto(f"{live_server}/entities?q=vladimir")
    assert page.locator(f"a.chip[href='/entities/{putin}']").count() == 1
    page.goto(f"{live_server}/entities?q=владимир")
    assert page.locator(f"a.chip[href='/entities/{putin}']").count() == 1
    tab.shot("entities")


def test_merge_and_split_through_the_page_show_in_the_json_api(tab, live_server):
    first = _ingest(live_server, "web-bj-1", "Boris Johnson spoke in London.", [("Boris Johnson", "PER")])
    _ingest(live_server, "web-bj-2", "Later Boris Johnson left.", [("Boris Johnson", "PER")])
    nick = _ingest(live_server, "web-bj-3", "Bojangles laughed at that.", [("Bojangles", "PER")])
    boris, bojangles = first["mentions"][0]["entity_id"], nick["mentions"][0]["entity_id"]
    assert boris != bojangles
    before = httpx.get(f"{live_server}/v1/entities/{boris}").json()["mention_count"]
    page = tab.page
    page.goto(f"{live_server}/entities/{boris}")
    page.fill("#fix-merge", "bojangles")
    page.click("form[data-action=merge-search] button[type=submit]")
    page.locator(".merge-hits button", has_text="Bojangles").click()
    preview = page.locator("#preview")
    assert f"will have {before + 1} mentions" in preview.inner_text()  # what will happen, before it does
    tab.shot("entity-merge-preview")
    assert httpx.get(f"{live_server}/v1/entities/{bojangles}").status_code == 200  # nothing happened yet
    preview.locator("button.confirm").click()
    tab.give_key_if_asked()
    page.wait_for_function("document.getElementById('flash').textContent.includes('Merged')")
    assert httpx.get(f"{live_server}/v1/entities/{bojangles}").status_code == 404
    merged = httpx.get(f"{live_server}/v1/entities/{boris}").json()
    assert merged["mention_count"] == before + 1 and "bojangles" in [a["alias"] for a in merged["aliases"]]
    assert page.locator("#kwic li").count() == before + 1  # the page reflects it

    moved = nick["mentions"][0]["id"]
    page.check(f"#m{moved}")
    page.fill("#fix-split-name", "Bojangles")
    page.click("form[data-action=split] button[type=submit]")
    assert "Move 1 ticked mention" in preview.inner_text()
    preview.locator("button.confirm").click()
    page.wait_for_function("document.getElementById('flash').textContent.includes('Split')")
    new_id = int(page.locator("#flash a").get_attribute("href").rsplit("/", 1)[1])
    assert httpx.get(f"{live_server}/v1/entities/{boris}").json()["mention_count"] == before
    assert httpx.get(f"{live_server}/v1/entities/{new_id}").json()["name"] == "Bojangles"
    doc = httpx.get(f"{live_server}/v1/documents/web-bj-3").json()
    assert doc["mentions"][0]["entity_id"] == new_id

    page.goto(f"{live_server}/entities/{new_id}")  # rename, then delete it
    page.fill("#fix-name", "Mr Bojangles")
    page.click("form[data-action=rename] button[type=submit]")
    preview.locator("button.confirm").click()
    page.wait_for_function("document.getElementById('flash').textContent.includes('Renamed')")
    assert httpx.get(f"{live_server}/v1/entities/{new_id}").json()["name"] == "Mr Bojangles"
    page.click("form[data-action=delete-entity] button[type=submit]")
    assert "1 mentions in 1 documents" in preview.inner_text()
    preview.locator("button.confirm").click()
    page.wait_for_url(re.compile(r"/entities$"))
    assert httpx.get(f"{live_server}/v1/entities/{new_id}").status_code == 404
    assert httpx.get(f"{live_server}/v1/documents/web-bj-3").json()["mentions"] == []


XSS_ID = 'x"><script>alert(1)</script>'
XSS_TEXT = 'Angela Merkel wrote <script>alert("doc")</script> and "onmouseover=alert(2) x=" in Berlin.'


def test_script_and_attribute_payloads_render_as_text(tab, live_server):
    stored = _ingest(
        live_server,
        XSS_ID,
        XSS_TEXT,
        [("Angela Merkel", "PER"), ("Berlin", "LOC")],
        metadata={"source": '<img src=x onerror="alert(3)">', "note": '"onmouseover=alert(4)'},
    )
    berlin = stored["mentions"][1]["entity_id"]
    name = '<img src=x onerror="alert(5)">"onmouseover=alert(6)'
    assert httpx.patch(f"{live_server}/v1/entities/{berlin}", json={"name": name}, headers=AUTH).is_success
    page = tab.page
    page.goto(f"{live_server}/documents")
    page.goto(f"{live_server}/documents/{XSS_ID.replace('#', '%23')}")
    assert page.locator("#doc-text").inner_text().startswith("Angela Merkel")
    assert '<script>alert("doc")</script>' in page.locator("#doc-text").inner_text()
    assert page.locator("h1").inner_text() == XSS_ID
    for element in page.locator("#doc-text *").all():
        assert not any(n.startswith("on") for n in element.evaluate("e => e.getAttributeNames()"))
    page.locator("#doc-text a.ent", has_text="Berlin").hover()
    page.goto(f"{live_server}/entities/{berlin}")
    assert page.locator("h1").inner_text().startswith(name)
    page.goto(f"{live_server}/entities?q=img")
    page.goto(f"{live_server}/")
    page.fill("#try-text", XSS_TEXT)
    page.click("#try-form button[type=submit]")
    page.wait_for_function("document.getElementById('try-status').textContent.includes('found')")
    assert "<script>" in page.locator("#try-result").inner_text()
    assert page.locator("#try-result script, #try-result img").count() == 0
    tab.shot("xss-as-text")
    # The tab fixture asserts that no dialog (alert) opened and no script error happened.


# -- 10k mentions of one entity; a 50k-word document ---------------------------------------------


def _big_store(data_dir: Path, dim: int) -> tuple[int, int]:
    """A store built through index.Store: one entity with 10,000 mentions in 500 documents, and one
    50,000-word document mentioning it 1,000 more times. Returns (entity id, mentions)."""
    from index import DocumentCreate, MentionCreate, NewEntity, Store

    rng = np.random.default_rng(0)
    sentence = "Angela Merkel said the talks in Brussels went well. "
    docs = []
    for d in range(500):
        text = "".join(f"({d}.{i}) {sentence}" for i in range(20))
        mentions, at = [], 0
        for _ in range(20):
            start = text.index("Angela Merkel", at)
            at = start + len("Angela Merkel")
            entity = {"new_entity": NewEntity("Angela Merkel", "PER")} if d == 0 else {}
            mentions.append(MentionCreate(start, at, "PER", rng.standard_normal(dim), **entity))
        docs.append((f"big-{d:03}", text, mentions))
    with Store.open(data_dir / "spanlink.db", dim=dim) as store:
        first = store.add_document(DocumentCreate(docs[0][0], docs[0][1], docs[0][2]))
        entity_id = first.created_entity_ids[0]
        linked = [
            DocumentCreate(
                key, text, [MentionCreate(m.start, m.end, "PER", m.vector, entity_id=entity_id) for m in ms]
            )
            for key, text, ms in docs[1:]
        ]
        store.add_documents(linked)
        words = ["word"] * 50_000
        for i in range(0, 50_000, 50):
            words[i] = "Merkel"
        long_text = " ".join(words)
        spans, at = [], 0
        while (start := long_text.find("Merkel", at)) >= 0:
            at = start + len("Merkel")
            spans.append(MentionCreate(start, at, "PER", rng.standard_normal(dim), entity_id=entity_id))
        store.add_document(DocumentCreate("long-50k-words", long_text, spans))
        return entity_id, store.get_entity(entity_id).mention_count


@contextlib.contextmanager
def _serve(checkpoint: Path, data_dir: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "api", "serve", "--model", str(checkpoint), "--vectors", "span"]
    command += ["--data-dir", str(data_dir), "--port", str(port)]
    log = (data_dir / "server.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, url, data_dir / "server.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_an_entity_with_10k_mentions_and_a_50k_word_document_page(tab, tiny_checkpoint, tmp_path):
    import ner

    entity_id, total = _big_store(tmp_path, ner.load(tiny_checkpoint).hidden_size)
    assert total == 11_000
    with _serve(tiny_checkpoint, tmp_path) as url:
        page = tab.page
        started = time.perf_counter()
        page.goto(f"{url}/entities/{entity_id}")
        loaded = time.perf_counter() - started
        assert loaded < 10, loaded
        assert page.locator("#kwic li").count() == 50
        mention_pages = page.locator("nav[aria-label='Pages of mentions']").first
        assert "page 1 of 220" in mention_pages.inner_text()
        assert "page 1 of 51" in page.locator("nav[aria-label='Pages of documents']").inner_text()
        first_ids = page.locator("#kwic input").evaluate_all("els => els.map(e => e.value)")
        tab.shot("entity-10k")
        mention_pages.locator("a[rel=next]").click()
        page.wait_for_url(re.compile(r"page=2"))
        second_ids = page.locator("#kwic input").evaluate_all("els => els.map(e => e.value)")
        assert len(second_ids) == 50 and not set(first_ids) & set(second_ids)
        page.goto(f"{url}/entities/{entity_id}?page=220")
        assert page.locator("#kwic li").count() == 50
        page.goto(f"{url}/entities/{entity_id}")  # the newest mention is the long document's last one
        page.locator("#kwic a.src").first.click()
        page.wait_for_url(re.compile(r"/documents/long-50k-words\?at=\d+#m\d+$"))
        assert page.locator(".ent:target").inner_text().startswith("Merkel")
        assert page.locator(".ent:target").is_visible()
        page.goto(f"{url}/documents/long-50k-words")
        pager = page.locator("nav.pager").first.inner_text()
        pages = int(re.search(r"page 1 of (\d+)", pager).group(1))
        assert pages >= 10 and page.locator("#doc-text a.ent").count() < 200
        page.goto(f"{url}/documents/long-50k-words?page={pages}")
        assert page.locator("#doc-text a.ent").count() > 0
        tab.shot("document-50k-last-page")
        page.goto(f"{url}/documents")
        assert "501" in page.locator("h1").inner_text()
