"""Where studies live: PACS nodes over DIMSE (pynetdicom) and DICOMweb (dicomweb-client), radview's own C-STORE SCP,
and the local study database the retrieved and received instances go into.

One job per module: ``nodes`` (the node settings file), ``errors`` (what can go wrong, in words), ``records``
(query criteria and the study/series rows both protocols return), ``instance_header`` (the few attributes an
arriving instance is filed by), ``sinks`` (where instances are written: a plain folder), ``study_db`` (the local
database: SQLite index + managed store), ``association`` (opening a DIMSE association, failures classified),
``dimse_query`` (C-ECHO, C-FIND), ``dimse_retrieve`` (C-GET, C-MOVE), ``dimse_send`` (C-STORE), ``store_scp``
(the C-STORE SCP), ``web_session`` (HTTP session: auth, TLS) and ``dicomweb`` (QIDO-RS, WADO-RS, STOW-RS).

Qt-free. pynetdicom and dicomweb-client are imported inside the functions that use them, so importing this room
costs nothing at startup.
"""
