"""The prediction log and its labels: every SQL statement that reads or writes them lives here.

`rows` says which rows a query reads and holds the expressions every reader shares (the first
labelled prediction of a request, the randomised unit, the latency bucket); `write` and `labels`
write; `losses` holds the per-request losses a `module:function` computes; `summaries` and
`latency` are the controller's evidence per role and arm; `health` the health triggers' (users in
both arms, label coverage); `series` the report's time series. Each
function takes a `Connection` and typed arguments and returns typed records: the statistics made of
them live with their readers (`rollout.gather`, `report.data`).
"""
