"""The run browser (`moa-bench task=view`): a static site of every run, layer by layer.

`eval.view.records` turns a run directory into plain records, `eval.view.site` writes them with
the page (`templates/`, `static/`).
"""
