"""Trained generators at work: SavedModels that need only TensorFlow (`export`), translating
folders and TFRecords into JPEGs or Kaggle's zip (`predict`), and the submission written at the
end of a run on its own devices (`submission`).

May import runtime/, data/, models/ and scoring/; not training/.
"""
