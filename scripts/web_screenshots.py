"""Make the README's screenshots of the web page: a store ingested with the default model from a few
hand-written news paragraphs in six languages, served by a real ``spanlink serve``, photographed by the
system Chromium through Playwright.

    .venv/bin/python scripts/web_screenshots.py [--out docs] [--model PATH]

Writes ``web-entity.png`` (the most mentioned person's page) and ``web-document.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from serving import wait_until_serving  # noqa: E402 - the benches' start-up wait, found via the path above

NEWS = [
    (
        "en-scholz-macron",
        "en",
        "Chancellor Olaf Scholz met French President Emmanuel Macron in Berlin on Tuesday to "
        "discuss support for Ukraine. Scholz said Germany and France would coordinate their "
        "positions before the European Council summit in Brussels. Macron called for a stronger "
        "European defence industry.",
    ),
    (
        "de-scholz-macron",
        "de",
        "Bundeskanzler Olaf Scholz hat am Dienstag in Berlin den französischen Präsidenten Emmanuel"
        " Macron empfangen. Macron sprach sich für eine stärkere Rolle der Europäischen Union aus.",
    ),
    (
        "fr-macron-berlin",
        "fr",
        "Emmanuel Macron s'est rendu à Berlin pour rencontrer Olaf Scholz. Le président français a "
        "plaidé pour une Europe plus souveraine face à la Russie.",
    ),
    (
        "pl-scholz-macron",
        "pl",
        "Kanclerz Olaf Scholz spotkał się w Berlinie z prezydentem Francji Emmanuelem Macronem. "
        "Rozmowy dotyczyły pomocy dla Ukrainy.",
    ),
    (
        "ru-scholz-macron",
        "ru",
        "Олаф Шольц и Эммануэль Макрон встретились в Берлине. Лидеры Германии и Франции обсудили "
        "помощь Украине.",
    ),
    (
        "es-macron-otan",
        "es",
        "El presidente francés Emmanuel Macron y el canciller alemán Olaf Scholz acordaron en "
        "Berlín reforzar la cooperación con la OTAN.",
    ),
    (
        "en-von-der-leyen",
        "en",
        "Ursula von der Leyen, President of the European Commission, welcomed the agreement reached"
        " in Brussels. Emmanuel Macron and Olaf Scholz are expected to back it at the summit.",
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--model", default=None, help="NER model (default: the embedded default model)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.api.conftest import free_port
    from tests.api.test_web_browser import CHROMIUM, CHROMIUM_ARGS

    data = Path(tempfile.mkdtemp(prefix="web-shots-"))
    port = free_port()
    command = [sys.executable, "-m", "api", "serve", "--data-dir", str(data), "--port", str(port)]
    if args.model:
        command += ["--model", args.model]
    log = (data / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, url, data / "server.log", timeout=900)
        documents = [
            {"id": key, "text": text, "language": lang, "metadata": {"source": "hand-written demo"}}
            for key, lang, text in NEWS
        ]
        httpx.post(f"{url}/v1/documents", json={"documents": documents}, timeout=900).raise_for_status()
        httpx.post(f"{url}/v1/entities/consolidate", timeout=300).raise_for_status()
        people = httpx.get(f"{url}/v1/entities", params={"label": "PER", "limit": 1}).json()["data"]
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"{url}/entities/{people[0]['id']}")
            page.screenshot(path=str(args.out / "web-entity.png"))
            page.goto(f"{url}/documents/{NEWS[0][0]}")
            page.set_viewport_size({"width": 1100, "height": 560})
            page.screenshot(path=str(args.out / "web-document.png"))
            browser.close()
        for name in ("web-entity.png", "web-document.png"):
            print(args.out / name, (args.out / name).stat().st_size, "bytes")
    finally:
        server.terminate()
        server.wait(60)
        log.close()


if __name__ == "__main__":
    main()
