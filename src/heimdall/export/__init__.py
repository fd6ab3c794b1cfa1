"""ONNX export, parity check, the model bundle and the runtime `Localizer`."""
