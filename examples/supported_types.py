"""Which values can be artifacts, and how each comes back.

Primitives and containers of primitives are stored as msgpack, numpy arrays as raw bytes,
anything else (here a class defined in this file) with cloudpickle. Every value loads back
with its type: a tuple stays a tuple, a set a set, an array keeps dtype and shape.

    python examples/supported_types.py run
"""

import numpy as np

from asyncflow import FlowSpec, step

try:
    import pandas as pd
except ImportError:  # pandas is optional: the DataFrame part is skipped without it
    pd = None


class Model:
    """A stand-in for a fitted model: any picklable object can be an artifact."""

    def __init__(self, weights):
        self.weights = list(weights)

    def predict(self, x):
        return sum(w * x**i for i, w in enumerate(self.weights))


class SupportedTypesFlow(FlowSpec):
    """Store one value of each kind in start and check them all in end."""

    @step
    def start(self):
        # primitives
        self.number = 42
        self.text = "hello"
        self.flag = True
        self.value = 3.14
        # containers
        self.list_data = [1, 2, 3]
        self.tuple_data = (1, 2, 3)
        self.set_data = {1, 2, 3}
        self.dict_data = {"key": "value"}
        # nested structures
        self.nested = {
            "models": [
                {"name": "model_a", "score": 0.95},
                {"name": "model_b", "score": 0.93},
            ]
        }
        # numpy
        self.matrix = np.array([[1, 2], [3, 4]], dtype=np.int32)
        # an instance of a class of our own
        self.model = Model([1.0, 0.5])
        if pd is not None:
            self.dataframe = pd.DataFrame({"A": [1, 2, 3], "B": [4, 5, 6]})
        else:
            print("pandas is not installed: skipping the DataFrame artifact")
        self.next(self.end)

    @step
    def end(self):
        assert type(self.tuple_data) is tuple and type(self.set_data) is set
        assert self.matrix.dtype == np.int32 and self.matrix.shape == (2, 2)
        best = max(self.nested["models"], key=lambda m: m["score"])
        print(f"tuple {self.tuple_data}, set {self.set_data}, best model {best['name']}")
        print(f"matrix {self.matrix.dtype} {self.matrix.shape}, sum {int(self.matrix.sum())}")
        print(f"model.predict(2.0) = {self.model.predict(2.0)}")
        if pd is not None:
            print(f"dataframe columns {list(self.dataframe.columns)}")


if __name__ == "__main__":
    SupportedTypesFlow.main()
