"""The interactive report page: one self-contained HTML file (Plotly's JavaScript inlined once, no network).

A ranked table sortable by any column (click its header) that scrolls inside the page instead of widening it;
learning curves of every trial (the top ones shown, the rest one legend click away); fANOVA parameter
importance; parallel coordinates coloured by the metric, categorical axes labelled with their values; the
Pareto front of an nsga2 sweep. The PNG files beside it (report.py) stay for people who want files.
"""

from __future__ import annotations

import html

import pandas as pd

from mer_search.core.dirs import epochs_at

SORT_JS = """
document.querySelectorAll("table.ranked th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const down = th.dataset.dir !== "desc";
  th.closest("tr").querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = down ? "desc" : "asc";
  const text = tr => tr.cells[col].dataset.v ?? tr.cells[col].textContent;
  // an empty cell (a parameter the trial did not have) sorts last either way; numbers only when every other
  // cell of the column is one: trial ids such as 68208338 stay text
  const empty = tr => text(tr).trim() === "";
  const numeric = [...body.rows].some(tr => !empty(tr)) &&
    [...body.rows].every(tr => empty(tr) || !isNaN(Number(text(tr))));
  const key = tr => numeric ? Number(text(tr)) : text(tr);
  const rows = [...body.rows].sort((a, b) => { if (empty(a) || empty(b)) return empty(a) - empty(b);
    const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1); });
  rows.forEach(r => body.appendChild(r));
}));
"""

STYLE = """
body{font-family:sans-serif;margin:1.5em;max-width:1400px}
.scroll{overflow-x:auto;max-width:100%;border:1px solid #ddd}
table.ranked{border-collapse:collapse;font-size:12px;white-space:nowrap}
table.ranked td,table.ranked th{border:1px solid #ddd;padding:2px 6px;text-align:right}
table.ranked th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
table.ranked th[data-dir=asc]::after{content:" \\25B2"} table.ranked th[data-dir=desc]::after{content:" \\25BC"}
table.ranked td.text{text-align:left;max-width:18em;overflow:hidden;text-overflow:ellipsis}
"""


def _cell(v) -> str:
    if isinstance(v, float) and v != v:          # NaN: a conditional parameter this trial's choices left out
        return '<td data-v="" title="not a parameter of this trial"></td>'
    if isinstance(v, float):
        return f'<td data-v="{v!r}">{v:.4g}</td>'
    text = html.escape(str(v))
    numeric = isinstance(v, (int,)) and not isinstance(v, bool)
    return f"<td>{text}</td>" if numeric else f'<td class="text" title="{text}">{text}</td>'


def ranked_table(r: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["rank", *r.columns])
    rows = "".join("<tr>" + f"<td>{rank}</td>" + "".join(_cell(v) for v in row) + "</tr>"
                   for rank, row in zip(r.index, r.itertuples(index=False)))
    return (f'<div class="scroll"><table class="ranked"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
            '</table></div>')


def curves(r: pd.DataFrame, table: pd.DataFrame, metric: str, top_k: int):
    import plotly.graph_objects as go

    fig = go.Figure()
    for rank, tid in zip(r.index, r.trial_id):
        g = table[table.trial_id == tid]
        fig.add_trace(go.Scatter(x=epochs_at(g), y=g[metric], mode="lines+markers", name=f"{rank}. {tid}",
                                 visible=True if rank <= top_k else "legendonly"))
    fig.update_layout(title=f"learning curves: the top {min(top_k, len(r))} shown, click a trial in the legend "
                            f"to show or hide it", xaxis_title="epoch", yaxis_title=metric)
    return fig


def importance_bars(imp: dict[str, float], metric: str):
    import plotly.graph_objects as go

    names = list(imp)[::-1]
    fig = go.Figure(go.Bar(x=[imp[n] for n in names], y=names, orientation="h"))
    fig.update_layout(title=f"what moved {metric} (Optuna fANOVA importance)", xaxis_title="importance",
                      height=140 + 28 * len(names))
    return fig


def parallel(r: pd.DataFrame, metric: str, params: list[str]):
    """One axis per parameter that varied; a categorical one shows its values as tick labels."""
    import plotly.graph_objects as go

    dims = []
    for c in params:
        values = r[c].map(lambda x: float(x) if isinstance(x, bool) else x)
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all():
            dims.append({"label": c, "values": numeric.astype(float)})
        else:
            codes, labels = pd.factorize(r[c].astype(str), sort=True)
            dims.append({"label": c, "values": codes, "tickvals": list(range(len(labels))),
                         "ticktext": [str(x)[:24] for x in labels]})
    dims.append({"label": metric, "values": r[metric]})
    fig = go.Figure(go.Parcoords(line={"color": r[metric], "colorscale": "Viridis", "showscale": True,
                                       "colorbar": {"title": {"text": metric}}}, dimensions=dims))
    fig.update_layout(title=f"parallel coordinates, coloured by {metric} (drag along an axis to filter)")
    return fig


def pareto(r: pd.DataFrame, front: pd.DataFrame, metric: str):
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=r.n_params, y=r[metric], mode="markers", name="trials", text=r.trial_id),
                     go.Scatter(x=front.n_params, y=front[metric], mode="lines+markers", name="Pareto front",
                                text=front.trial_id)])
    fig.update_layout(title="Pareto front: dev metric against parameter count", xaxis_type="log",
                      xaxis_title="parameters", yaxis_title=metric)
    return fig


def page(title: str, summary: str, table_html: str, figures: list) -> str:
    import plotly.io as pio

    parts = [pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), config={"responsive": True})
             for i, fig in enumerate(figures)]
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>"
            f"<h2>Trials (click a column to sort)</h2>{table_html}"
            + "".join(f"<div>{p}</div>" for p in parts)
            + f"<script>{SORT_JS}</script></body></html>")
