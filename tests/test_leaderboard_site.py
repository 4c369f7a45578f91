"""`ragenv leaderboard regenerate` end to end, the committed entries, and the page in a real headless browser.

The browser is Debian's chromium driven by Playwright (never `playwright install`);
the browser tests skip only when chromium is not installed.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import TEST_LLM, run_cli
from tests.test_data import ID_PATTERN

AGENTS = ("bm25s", "closed-book", "oracle")
FULL_TEST_SPLIT = {"nq": 369, "hotpotqa": 500}  # questions in each dataset's test split (ragenv data info)
RAGENV_QUESTION_ID = re.compile("|".join(ID_PATTERN.values()))  # ragenv.data's ids, never a source's own
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def regenerated(small_dataset, tmp_path_factory) -> Path:
    """One command: evaluate three agents on 4 small-fixture questions, submissions, replayed entries, page."""
    out = tmp_path_factory.mktemp("board")
    result = run_cli("leaderboard", "regenerate", "--agents", ",".join(AGENTS), "--dataset", str(small_dataset),
                     "--split", "test", "--limit", "4", "--llm", TEST_LLM, "--out", str(out), "--allow-local")
    assert result.returncode == 0, result.stderr
    assert "replayed = evaluated" in result.stdout
    return out


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the browser test needs it")
    return path


@pytest.fixture(scope="module")
def browser():
    """A fresh headless chromium (own user-data-dir, no network services) for the module."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="ragenv-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(profile, executable_path=executable, headless=True,
                                                               args=CHROMIUM_FLAGS)
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def test_regenerate_writes_submissions_entries_and_page(regenerated):
    submissions = sorted((regenerated / "submissions").glob("*.json"))
    entries = sorted((regenerated / "entries").glob("*.json"))
    assert len(submissions) == len(entries) == 3
    assert (regenerated / "site" / "index.html").is_file()
    by_agent = {json.loads(p.read_text())["metadata"]["name"]: json.loads(p.read_text()) for p in entries}
    assert set(by_agent) == set(AGENTS)
    assert by_agent["oracle"]["metrics"]["hit@3"] == 1.0
    assert by_agent["closed-book"]["metrics"]["retrievals_per_question"] == 0.0
    for entry in by_agent.values():
        assert entry["n"] == 4 and "replay" not in entry and "seconds" not in entry["metrics"]
    for path in submissions:  # each entry names the exact submission it scored
        text = json.loads(path.read_text())
        from ragenv.leaderboard.submission import parse_submission, to_json

        digest = hashlib.sha256(to_json(parse_submission(json.dumps(text))).encode()).hexdigest()
        assert digest in {e["submission_sha256"] for e in by_agent.values()}


def test_regenerate_again_gives_identical_entries(regenerated, small_dataset):
    before = {p.name: p.read_bytes() for p in (regenerated / "entries").glob("*.json")}
    result = run_cli("leaderboard", "regenerate", "--agents", ",".join(AGENTS), "--dataset", str(small_dataset),
                     "--split", "test", "--limit", "4", "--llm", TEST_LLM, "--out", str(regenerated), "--allow-local")
    assert result.returncode == 0, result.stderr
    after = {p.name: p.read_bytes() for p in (regenerated / "entries").glob("*.json")}
    assert after == before


@pytest.mark.unit
def test_committed_entries_are_the_published_settings_and_match_their_submissions():
    from ragenv.leaderboard.entries import BASELINES, ENTRIES_DIR, REFERENCE_AGENTS, SUBMISSIONS_DIR, load_entries
    from ragenv.leaderboard.submission import read_submission, to_json

    entries = load_entries(ENTRIES_DIR)
    by_setting: dict = {}
    for _, entry in entries:
        by_setting.setdefault((entry.env_id, entry.dataset.name, entry.dataset.limit), set()).add(entry.metadata.name)
    assert by_setting.pop(("RAGRetrieval-v0", "nq", 100)) == set(BASELINES["RAGRetrieval-v0"])  # README: first 100
    # the full test splits of both datasets: every baseline and the trained reference agents
    assert by_setting == {(env, dataset, None): set(BASELINES[env]) | set(agents)
                          for (env, dataset), agents in REFERENCE_AGENTS.items()}
    for sid, entry in entries:
        assert (entry.dataset.split, entry.llm.name) == ("test", "gemma-3-270m")
        assert entry.numerics["canonical"] and entry.numerics["dtype"] == "float32"
        assert entry.n == (entry.dataset.limit or FULL_TEST_SPLIT[entry.dataset.name]) == len(entry.per_question)
        # ragenv's question ids and no query texts: a results file never copies the dataset's ids or questions
        assert all(RAGENV_QUESTION_ID.fullmatch(r["question_id"]) for r in entry.per_question)
        assert not any("search_queries" in r for r in entry.per_question)
        submission = read_submission(SUBMISSIONS_DIR / f"{sid}.json")
        assert submission.env_id == entry.env_id
        assert hashlib.sha256(to_json(submission).encode()).hexdigest() == entry.submission_sha256
        if entry.env_id == "RAGRetrieval-v0":
            assert [a.passage_ids for a in submission.actions] == [r["passage_ids"] for r in entry.per_question]
        else:
            assert [a.retrievals for a in submission.actions] == [r["retrievals"] for r in entry.per_question]
            assert all(r["retrievals"] or not r["passage_ids"] for r in entry.per_question)  # no retrieval: no passage
        if entry.metadata.name in REFERENCE_AGENTS[entry.env_id, entry.dataset.name]:  # trained, never on test
            assert entry.metadata.agent_type in ("learned-retriever", "rag-policy")
            assert re.match(rf"{entry.env_id} feedback on (nq|hotpotqa) train\b", entry.metadata.training_data)
            assert entry.metadata.test_split_used_in_training is False


@pytest.mark.unit
def test_committed_page_has_a_section_per_environment_with_its_columns():
    from ragenv.leaderboard.entries import ENTRIES_DIR, load_entries
    from ragenv.leaderboard.site import render

    page = render(load_entries(ENTRIES_DIR))
    sections = re.findall(r'<h2 class="env">([^<]+)</h2>', page)
    assert sections == ["RAGRetrieval-v0", "SmartRAG-v0"]  # in ragenv.ENVIRONMENTS order
    retrieval_part, smartrag_part = page.split('<h2 class="env">SmartRAG-v0</h2>')
    assert "hit@3" in retrieval_part and "Closed-book share" not in retrieval_part
    board = smartrag_part.split('<section class="detail"')[0]
    assert "Closed-book share" in board and "hit@" not in board and "Answer log-prob" not in board
    assert "Retrieved with" in smartrag_part and "Retrieved with" not in retrieval_part


def _open(browser, page_path: Path):
    page = browser.new_page()
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(page_path.resolve().as_uri())
    return page, requests, errors


def _column(page, table: str, index: int) -> list[float]:
    values = page.eval_on_selector_all(f"{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].dataset.value)")
    return [float(v) for v in values]


def test_page_renders_sorts_and_shows_details_in_chromium(regenerated, browser, tmp_path):
    page, requests, errors = _open(browser, regenerated / "site" / "index.html")
    table = "table.board"
    assert page.locator(f"{table} tbody tr").count() == 3
    headers = page.eval_on_selector_all(f"{table} thead th", "hs => hs.map(h => h.textContent)")
    for label in ("Agent", "Reward", "Accuracy", "EM", "F1", "Answer log-prob", "Retrievals / q", "hit@3"):
        assert label in headers
    assert page.locator("svg circle").count() == 3  # the accuracy-vs-retrievals plot

    column = headers.index("Passages / q")  # distinct per agent: closed-book 0, oracle 1, bm25s 3
    page.click(f"{table} thead th:nth-child({column + 1})")
    assert page.get_attribute(f"{table} thead th:nth-child({column + 1})", "aria-sort") == "descending"
    assert _column(page, table, column) == [3.0, 1.0, 0.0]
    page.click(f"{table} thead th:nth-child({column + 1})")
    assert _column(page, table, column) == [0.0, 1.0, 3.0]
    page.click(f"{table} thead th:nth-child(1)")
    names = page.eval_on_selector_all(f"{table} tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert names == sorted(names, reverse=True)

    href = page.get_attribute(f"{table} a:text-is('oracle')", "href")
    detail = page.locator(f"section.detail[id='{href[1:]}']")
    assert not detail.is_visible()
    page.click(f"{table} a:text-is('oracle')")
    assert detail.is_visible() and detail.locator("tbody tr").count() == 4
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests  # self-contained: nothing fetched
    page.close()


def test_hostile_strings_are_shown_as_text_never_run(regenerated, browser, tmp_path):
    from ragenv.leaderboard.site import build_site

    folder = tmp_path / "entries"
    folder.mkdir()
    source = next((regenerated / "entries").glob("*.json"))
    entry = json.loads(source.read_text())
    entry["metadata"]["name"] = '<img src=x onerror="window.__pwned=1">'
    entry["metadata"]["description"] = "</script><script>window.__pwned=2</script>"
    entry["metadata"]["authors"] = ["\"'><svg onload=window.__pwned=3>"]
    entry["per_question"][0]["generated_answer"] = "<b onmouseover=window.__pwned=4>bold</b>"
    (folder / "hostile.json").write_text(json.dumps(entry))
    page_path = build_site(folder, tmp_path / "site")
    html_text = page_path.read_text()
    assert "<img src=x" not in html_text and "<script>window.__pwned" not in html_text
    page, requests, errors = _open(browser, page_path)
    page.click("table.board a")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("table.board a").first.text_content() == '<img src=x onerror="window.__pwned=1">'
    assert page.locator("section.detail:target").inner_text().count("window.__pwned") == 4
    assert all(url.startswith("file://") for url in requests), requests
    page.close()
