"""The static leaderboard page: one self-contained ``index.html`` (inline CSS, JS and SVG; no CDN, no fetch).

The page has one section per environment (RAGRetrieval-v0, SmartRAG-v0), each with its
own columns. For each (environment, dataset, split, LLM, environment options) it has a
sortable table (click a column header), a plot of accuracy against retrievals per
question, and for every entry a detail view (its metadata, fingerprints and
per-question outcomes) opened by the entry's link (``#e-<slug>``; CSS ``:target``, so
it works without JavaScript). Every string that came from a submission is HTML-escaped
where it is written; the script only reorders existing rows and never builds HTML from
data; ``metadata.url`` is shown as text, never as a link.
"""
from __future__ import annotations

import html
import math
from collections import defaultdict
from pathlib import Path

from ragenv.atomic import atomic_write
from ragenv.leaderboard.entries import Entry, load_entries
from ragenv.provenance import provenance_line

_ANSWER_COLUMNS = (
    ("accuracy", "Accuracy", "a gold answer occurs in the LLM's answer"),
    ("em", "EM", "exact match of the LLM's answer"),
    ("f1", "F1", "token F1 of the LLM's answer"),
)
COLUMNS = {  # environment -> (metric key or special, header, tooltip)
    "RAGRetrieval-v0": (
        ("reward", "Reward", "mean reward (environment reward minus passage cost)"),
        *_ANSWER_COLUMNS,
        ("answer_logprob", "Answer log-prob", "mean token log-probability of the gold answer"),
        ("retrievals_per_question", "Retrievals / q", "share of questions answered with at least one passage"),
        ("passages_per_question", "Passages / q", "passages shown to the LLM per question"),
        ("hit", "hit@k", "a gold passage is among the chosen ones"),
    ),
    "SmartRAG-v0": (
        ("reward", "Reward", "mean return: EM + F1 (or accuracy) of the answer minus alpha per retrieval"),
        *_ANSWER_COLUMNS,
        ("retrievals_per_question", "Retrievals / q", "mean retrievals per question"),
        ("answered_without_retrieval", "Closed-book share", "share of questions answered without retrieving"),
    ),
}
RANKED = ("reward", "accuracy", "em", "f1", "answer_logprob", "hit")  # higher is better: the best is bold
X_AXIS = {"RAGRetrieval-v0": "share of questions answered with passages",
          "SmartRAG-v0": "mean retrievals per question"}
PALETTE = {"sparse-retriever": "#1f77b4", "dense-retriever": "#9467bd", "learned-retriever": "#2ca02c",
           "rag-policy": "#17becf", "no-retrieval": "#7f7f7f", "oracle": "#d62728", "random": "#ff7f0e",
           "other": "#8c564b"}

CSS = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24; background: #fff; }
body { max-width: 1180px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .4rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
p.lead, p.note { color: #57606a; margin: .2rem 0 .8rem; } \
.mono { font-family: ui-monospace, monospace; font-size: .85em; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { padding: .35rem .55rem; border-bottom: 1px solid #d8dee4; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, th.text, td.text { text-align: left; }
table.board th { background: #f6f8fa; cursor: pointer; user-select: none; }
table.board th:hover { background: #eaeef2; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: .7em; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: .7em; }
table.board tbody tr:hover { background: #f6f8fa; }
td.best { font-weight: 700; }
.tag { display: inline-block; padding: 0 .4rem; border-radius: .6rem; font-size: .75rem; color: #fff; }
.group { display: grid; grid-template-columns: minmax(0, 1fr); gap: .8rem; }
figure { margin: .6rem 0 0; } figcaption { color: #57606a; font-size: .85rem; }
section.detail { display: none; border: 1px solid #d8dee4; border-radius: 6px; \
padding: .4rem 1rem 1rem; margin-top: 1rem; }
section.detail:target { display: block; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .2rem 1rem; margin: .4rem 0; }
dt { color: #57606a; } dd { margin: 0; overflow-wrap: anywhere; }
.perq { max-height: 420px; overflow: auto; border: 1px solid #d8dee4; }
.perq td.text { white-space: normal; max-width: 28rem; overflow-wrap: anywhere; }
a { color: #0969da; }
"""

SCRIPT = """
(function () {
  function key(cell) {
    var v = cell.getAttribute('data-value');
    if (v === null || v === '') return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortTable(table, th) {
    var headers = Array.prototype.slice.call(th.parentNode.children);
    var col = headers.indexOf(th);
    var dir = th.getAttribute('aria-sort') === 'descending' ? 'ascending' : 'descending';
    headers.forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null && y === null) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      var c = x < y ? -1 : x > y ? 1 : 0;
      return dir === 'ascending' ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll('table.board').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th) {
      th.setAttribute('tabindex', '0');
      th.addEventListener('click', function () { sortTable(table, th); });
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sortTable(table, th); });
    });
  });
})();
"""


def esc(value) -> str:
    """HTML-escape anything (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def _fmt(value, digits: int = 3) -> str:
    value = _num(value)
    return "–" if value is None else f"{value:.{digits}f}"


def _metric(entry: Entry, key: str):
    return entry.metrics.get(f"hit@{entry.env_options.get('k', 3)}") if key == "hit" else entry.metrics.get(key)


def _group_key(entry: Entry) -> tuple:
    o = entry.env_options
    return (entry.env_id, entry.dataset.name, entry.dataset.split, entry.dataset.limit, entry.llm.name,
            entry.numerics.get("dtype"), tuple(sorted((k, str(v)) for k, v in o.items())))


def _group_title(entry: Entry) -> str:
    d, o = entry.dataset, entry.env_options
    questions = f"first {d.limit}" if d.limit else "all"
    options = ", ".join(f"{k}={v}" for k, v in o.items())
    setting = entry.numerics.get("dtype", "?") + ("" if entry.numerics.get("canonical") else " (NON-CANONICAL)")
    return (f"{entry.env_id} · {Path(d.name).name}/{d.split} ({questions} questions) · LLM {entry.llm.name} · "
            f"{setting} · {options}")


def _env_order(env_id: str) -> int:
    from ragenv import ENVIRONMENTS

    ids = [row[0] for row in ENVIRONMENTS]
    return ids.index(env_id) if env_id in ids else len(ids)


def _env_what(env_id: str) -> str:
    """The environment's one-line description (ragenv.ENVIRONMENTS), for its section of the page."""
    from ragenv import ENVIRONMENTS

    return next((f"The agent's task: {what}." for row_id, _, _, what in ENVIRONMENTS if row_id == env_id), "")


def _tag(agent_type: str) -> str:
    return f'<span class="tag" style="background:{PALETTE.get(agent_type, "#8c564b")}">{esc(agent_type)}</span>'


def _columns(entry: Entry) -> tuple:
    return COLUMNS.get(entry.env_id, COLUMNS["RAGRetrieval-v0"])


def _table(group: list[tuple[str, Entry]], gid: str) -> str:
    columns = _columns(group[0][1])
    best = {}
    for key, _, _ in columns:
        values = [_num(_metric(e, key)) for _, e in group if e.metadata.agent_type != "oracle"]
        values = [v for v in values if v is not None]
        if values and key in RANKED:
            best[key] = max(values)
    k = group[0][1].env_options.get("k", 3)
    head = ['<th class="text" data-type="text" title="agent name">Agent</th>',
            '<th class="text" data-type="text" title="agent type">Type</th>']
    for key, label, tip in columns:
        head.append(f'<th data-type="num" data-key="{esc(key)}" title="{esc(tip)}">'
                    f'{esc(label if key != "hit" else f"hit@{k}")}</th>')
    head.append('<th data-type="num" title="questions">n</th>')
    rows = []
    for sid, entry in sorted(group, key=lambda item: -(_num(item[1].metrics.get("reward")) or -math.inf)):
        name = esc(entry.metadata.name)
        cells = [f'<td class="text" data-value="{name}"><a href="#e-{esc(sid)}">{name}</a></td>',
                 f'<td class="text" data-value="{esc(entry.metadata.agent_type)}">'
                 f'{_tag(entry.metadata.agent_type)}</td>']
        for key, _, _ in columns:
            value = _num(_metric(entry, key))
            is_best = value is not None and best.get(key) == value and entry.metadata.agent_type != "oracle"
            mark = ' class="best"' if is_best else ""
            cells.append(f'<td{mark} data-value="{"" if value is None else repr(value)}">{_fmt(value)}</td>')
        cells.append(f'<td data-value="{entry.n}">{entry.n}</td>')
        rows.append(f'<tr data-entry="{esc(sid)}">' + "".join(cells) + "</tr>")
    return (f'<table class="board" id="board-{gid}"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _plot(group: list[tuple[str, Entry]]) -> str:
    """Inline SVG scatter: accuracy (y) against retrievals per question (x, see :data:`X_AXIS`), labels nudged apart."""
    width, height, left, right, top, bottom = 640, 330, 56, 170, 16, 46
    points = []
    for sid, entry in group:
        x, y = _num(entry.metrics.get("retrievals_per_question")), _num(entry.metrics.get("accuracy"))
        if x is not None and y is not None:
            points.append((x, y, entry.metadata.name, entry.metadata.agent_type, sid))
    x_max = max([1.0] + [p[0] for p in points])
    y_max = max([0.1] + [p[1] for p in points]) * 1.15
    y_max = min(1.0, math.ceil(y_max * 10) / 10) if y_max <= 1 else math.ceil(y_max)
    sx = lambda x: left + x / x_max * (width - left - right)  # noqa: E731
    sy = lambda y: top + (1 - y / y_max) * (height - top - bottom)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="accuracy against retrievals per question" font-size="12" '
             'font-family="sans-serif">',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
             'fill="#fafbfc" stroke="#d0d7de"/>']
    for i in range(6):
        yv = y_max * i / 5
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#eaeef2"/>'
                     f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end" fill="#57606a">{yv:.2f}</text>')
    for i in range(5):
        xv = x_max * i / 4
        parts.append(f'<text x="{sx(xv):.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#57606a">'
                     f'{xv:.2f}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                 'retrievals per question</text>'
                 f'<text transform="translate(14 {(top + height - bottom) / 2:.1f}) rotate(-90)" '
                 'text-anchor="middle">accuracy</text>')
    labels = sorted(points, key=lambda p: -p[1])
    placed: list[tuple[float, float]] = []  # (x, label y): labels collide only near the same x
    for x, y, name, agent_type, sid in labels:
        ly = sy(y) + 4
        while any(abs(ly - other_y) < 14 and abs(sx(x) - other_x) < 120 for other_x, other_y in placed):
            ly += 14
        placed.append((sx(x), ly))
        color = PALETTE.get(agent_type, "#8c564b")
        parts.append(f'<a href="#e-{esc(sid)}"><circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{color}" '
                     f'fill-opacity="0.85"><title>{esc(name)}: accuracy {y:.3f}, retrievals/q {x:.2f}</title></circle>'
                     f'<line x1="{sx(x) + 6:.1f}" y1="{sy(y):.1f}" x2="{sx(x) + 12:.1f}" y2="{ly - 4:.1f}" '
                     'stroke="#afb8c1"/>'
                     f'<text x="{sx(x) + 14:.1f}" y="{ly:.1f}" fill="#1b1f24">{esc(name)}</text></a>')
    parts.append("</svg>")
    return "".join(parts)


def _detail(sid: str, entry: Entry) -> str:
    m, d, llm = entry.metadata, entry.dataset, entry.llm
    k = entry.env_options.get("k", 3)
    facts = [
        ("Authors", ", ".join(m.authors)), ("Agent type", m.agent_type), ("Description", m.description or "–"),
        ("URL (not a link)", m.url or "–"), ("Training data", m.training_data),
        ("Test split used in training", "yes" if m.test_split_used_in_training else "no"),
        ("Environment", entry.env_id), ("Options", ", ".join(f"{a}={b}" for a, b in entry.env_options.items())),
        ("Dataset", f"{d.name} / {d.split}" + (f" (first {d.limit})" if d.limit else "")),
        ("Data fingerprint", d.fingerprint), ("LLM", f"{llm.name} (prompt {llm.prompt_version})"),
        ("LLM fingerprint", llm.fingerprint),
        ("Replayed under", provenance_line({**entry.provenance, "numerics": entry.numerics})),
        ("Submitted under", f"{llm.numerics.dtype} on {llm.numerics.device} ({llm.numerics.hardware or '?'})"),
        ("Submission sha256", entry.submission_sha256),
        ("Metrics", ", ".join(f"{key} {_fmt(value)}" for key, value in entry.metrics.items())),
    ]
    dl = "".join(f"<dt>{esc(a)}</dt><dd{' class=mono' if 'fingerprint' in a or 'sha256' in a else ''}>{esc(b)}</dd>"
                 for a, b in facts)
    per_question = _smartrag_rows(entry) if entry.env_id == "SmartRAG-v0" else _retrieval_rows(entry, k)
    return (f'<section class="detail" id="e-{esc(sid)}"><h3>{esc(m.name)} {_tag(m.agent_type)}</h3>'
            f'<dl>{dl}</dl><h3>Per question ({entry.n})</h3>{per_question}'
            '<p><a href="#top">back to the tables</a></p></section>')


TEXT_HEADERS = frozenset({"Question", "Passages", "Retrieved with", "LLM answer"})  # left-aligned columns


def _per_question_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th class="text">{esc(h)}</th>' if h in TEXT_HEADERS else f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f'<div class="perq"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _retrieval_rows(entry: Entry, k: int) -> str:
    rows = [[f'<td class="text mono">{esc(r.get("question_id"))}</td>',
             f'<td class="text mono">{esc(" ".join(map(str, r.get("passage_ids") or [])) or "(none)")}</td>',
             f'<td>{_fmt(r.get("reward"))}</td>', f'<td>{_fmt(r.get("answer_logprob"))}</td>',
             f'<td>{_fmt(r.get(f"hit@{k}"), 0)}</td>', f'<td>{_fmt(r.get("accuracy"), 0)}</td>',
             f'<td>{_fmt(r.get("em"), 0)}</td>', f'<td>{_fmt(r.get("f1"), 2)}</td>',
             f'<td class="text">{esc(r.get("generated_answer"))}</td>'] for r in entry.per_question]
    return _per_question_table(["Question", "Passages", "Reward", "Log-prob", f"hit@{k}", "Acc", "EM", "F1",
                                "LLM answer"], rows)


def _smartrag_rows(entry: Entry) -> str:
    rows = [[f'<td class="text mono">{esc(r.get("question_id"))}</td>',
             f'<td class="text">{esc(" then ".join(r.get("retrievals") or []) or "(answer at once)")}</td>',
             f'<td class="text mono">{esc(" ".join(map(str, r.get("passage_ids") or [])) or "(none)")}</td>',
             f'<td>{_fmt(r.get("reward"))}</td>', f'<td>{_fmt(r.get("accuracy"), 0)}</td>',
             f'<td>{_fmt(r.get("em"), 0)}</td>', f'<td>{_fmt(r.get("f1"), 2)}</td>',
             f'<td class="text">{esc(r.get("generated_answer"))}</td>'] for r in entry.per_question]
    return _per_question_table(["Question", "Retrieved with", "Passages", "Reward", "Acc", "EM", "F1",
                                "LLM answer"], rows)


def render(entries: list[tuple[str, Entry]]) -> str:
    """The whole page as one HTML string."""
    from ragenv import __version__

    groups: dict[tuple, list[tuple[str, Entry]]] = defaultdict(list)
    for sid, entry in entries:
        groups[_group_key(entry)].append((sid, entry))
    body = []
    shown_env = None
    for gid, (_, group) in enumerate(sorted(groups.items(), key=lambda item: (_env_order(item[0][0]), str(item[0])))):
        env_id = group[0][1].env_id
        if env_id != shown_env:
            body.append(f'<h2 class="env">{esc(env_id)}</h2><p class="note">{esc(_env_what(env_id))}</p>')
            shown_env = env_id
        body.append(f'<h3>{esc(_group_title(group[0][1]))}</h3><div class="group">{_table(group, str(gid))}'
                    f'<figure>{_plot(group)}<figcaption>Accuracy against retrievals per question '
                    f'({esc(X_AXIS.get(env_id, "retrievals per question"))}). Click a point or a name for its '
                    'details.</figcaption></figure></div>')
    if not groups:
        body.append("<p>No entries yet: run <code>ragenv leaderboard regenerate</code>.</p>")
    details = "".join(_detail(sid, entry) for sid, entry in entries)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; img-src data:">
<title>ragenv leaderboard</title><style>{CSS}</style></head>
<body id="top"><h1>ragenv leaderboard</h1>
<p class="lead">Every number below was computed by replaying the submitted actions against the frozen environment
(<code>ragenv leaderboard evaluate</code>); scores a submission reports are ignored. Click a column header to sort,
an agent for its details. Oracle rows read the gold passages: an upper bound, not ranked for "best".</p>
{''.join(body)}
{details}
<p class="note">{len(entries)} entries · built by ragenv {esc(__version__)} · <code>ragenv leaderboard build</code></p>
<script>{SCRIPT}</script>
</body></html>
"""


def build_site(entries_dir: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html`` from the entries in ``entries_dir``; returns its path."""
    page = render(load_entries(entries_dir))
    return atomic_write(Path(out_dir) / "index.html", page)
