"""``mdgw top``: a live terminal view of a running gateway and API (rich).

:mod:`.model` parses scrapes and computes rates (pure), :mod:`.view` draws a frame
(pure), :mod:`.run` scrapes and refreshes once a second.
"""
