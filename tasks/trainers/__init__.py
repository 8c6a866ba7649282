"""Lightning modules of the use cases (the networks are plain ``nn.Module`` s in tasks.models).

:mod:`tasks.trainers.ice` trains the sea-ice patch classifiers, :mod:`tasks.trainers.crops` the
crop-type time-series classifiers; :mod:`tasks.trainers.card` is the model card (``model.json``)
and :mod:`tasks.trainers.contract` the result every training function returns.
"""
