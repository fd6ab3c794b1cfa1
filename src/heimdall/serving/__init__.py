"""The serving runtime: the models that can be served and the cache of loaded localizers
(`models`), and the rollout that routes each request to the promoted model, a canary or a
shadow (`rollout`). The API's routes call these; nothing here knows about HTTP.
"""
