"""A scikit-learn model served by KServe's `ModelServer` (V1: `POST /v1/models/{name}:predict` with
`{"instances": [[…], …]}`), as KServe's documentation writes a custom predictor. Run by the tests with
the kserve peer's interpreter (`.venv-peers/kserve`), never imported by pytest:

    python kserve_model.py --model_name fare --model_path model.joblib --http_port 8080
"""

import argparse

import joblib
import pandas as pd
from kserve import Model, ModelServer, model_server


class SKLearnModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: dict, headers: dict | None = None) -> dict:
        # the model was fitted on a frame: the instances' columns are its features, in order
        frame = pd.DataFrame(payload["instances"], columns=self.model.feature_names_in_)
        return {"predictions": [float(v) for v in self.model.predict(frame)]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True, help="a joblib file of a scikit-learn model")
    args, _ = parser.parse_known_args()
    ModelServer().start([SKLearnModel(args.model_name, args.model_path)])
