"""The signal record shared with the executor, and the trainer's metrics records."""

import msgpack
import pytest

from cobstack.core.schema import SchemaError
from cobstack.trainer.records import decode_record, encode_record
from cobstack.trainer.signals import SIGNAL_VERSION, Signal, decode_signal, encode_signal, make_signal


def test_signal_round_trip_and_fields():
    s = make_signal("BTC-USD", 2_000, "1700000000000-3", 1_000, "tiny-abc@40", 10, [0.1, 0.2, 0.7])
    assert (s.direction, s.action, s.confidence) == (1, "buy", 0.7)
    back = decode_signal(encode_signal(s))
    assert back == s
    assert make_signal("BTC-USD", 1, "1-0", 1, "m", 10, [0.6, 0.3, 0.1]).action == "sell"
    assert make_signal("BTC-USD", 1, "1-0", 1, "m", 10, [0.2, 0.5, 0.3]).action == "hold"


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("model_version"), "model_version"),
    (lambda d: d.update(probs=[0.5, 0.5]), "probs"),
    (lambda d: d.update(probs=[0.5, 0.5, 0.5]), "probs"),
    (lambda d: d.update(direction=0), "direction"),
    (lambda d: d.update(confidence=0.1), "confidence"),
    (lambda d: d.update(ts="now"), "ts"),
    (lambda d: d.update(v=SIGNAL_VERSION + 1), "v"),
])
def test_malformed_signals_raise_schema_error_naming_the_field(mutate, field):
    d = msgpack.unpackb(encode_signal(make_signal("BTC-USD", 1, "1-0", 1, "m", 10, [0.1, 0.2, 0.7])))
    mutate(d)
    with pytest.raises(SchemaError, match=field):
        decode_signal(msgpack.packb(d))


@pytest.mark.parametrize("garbage", [b"", b"\xc1", b"not msgpack at all", msgpack.packb([1, 2])])
def test_garbage_never_crashes_the_reader(garbage):
    with pytest.raises(SchemaError):
        decode_signal(garbage)


def test_encoder_refuses_an_inconsistent_signal():
    bad = Signal(SIGNAL_VERSION, "BTC-USD", 1, "1-0", 1, "m", 10, (0.1, 0.2, 0.7), 1, "sell", 0.7)
    with pytest.raises(SchemaError, match="direction/action"):
        encode_signal(bad)


def test_train_records_round_trip_and_reject_unknown_kinds():
    d = decode_record(encode_record("progress", 5, "BTC-USD", "tiny", {"step": 3, "loss": 0.5}))
    assert (d["kind"], d["step"], d["symbol"], d["v"]) == ("progress", 3, "BTC-USD", 1)
    with pytest.raises(SchemaError, match="kind"):
        encode_record("gossip", 5, "BTC-USD", "tiny", {})
    with pytest.raises(SchemaError):
        decode_record(b"\x93\x01")
