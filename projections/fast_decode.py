"""Decoding stored events for a rebuild's fold: orjson, where the mapper adds nothing else.

The library's mapper decodes each state with the standard json module and a Python object
hook called for every object in it: about 14 us an event here, the largest part of folding
a registration. Where the application's mapper is the library's own, with its JSON
transcoder and neither cipher nor compressor, the same event comes from orjson plus what
the mapper does after decoding, done the same way: the transcoder's own decodings applied
as its hook applies them (to every object of exactly the keys `_type_` and `_data_`,
innermost first), the id conversion, and the upcasters (`upcast_v1_v2`, ... up to the
class version): about 5 us.

Exact by construction: a state the fast path cannot take as the mapper would (orjson refuses
it, a float appears anywhere: orjson reads an integer beyond 64 bits as one, json as an int;
an unknown `_type_`; any error at all) goes through the mapper itself, so what decodes,
to what, and what fails with which error stay the mapper's.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    Notification,
    Transcoding,
    find_id_convertor,
)
from eventsourcing.utils import resolve_topic


class _LeftToMapperError(Exception):
    """This state is left to the mapper."""


class EventDecoder:
    """Stored events to domain events, as `mapper.to_domain_event` makes them."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper = mapper
        transcoder = mapper.transcoder
        self.fast = (
            type(mapper).to_domain_event is Mapper.to_domain_event
            and mapper.cipher is None
            and mapper.compressor is None
            and isinstance(transcoder, JSONTranscoder)
            and type(transcoder).decode is JSONTranscoder.decode
            and type(transcoder)._decode_obj is JSONTranscoder._decode_obj
        )
        self._names: dict[str, Transcoding] = (
            dict(transcoder.names) if isinstance(transcoder, JSONTranscoder) else {}
        )
        # Per topic and id type: the event class and the id conversion.
        self._classes: dict[tuple[str, type[Any]], tuple[type[Any], Any]] = {}

    def decode(
        self,
        position: int,
        originator_id: UUID | str,
        originator_version: int,
        topic: str,
        state: bytes,
    ) -> Any:
        if self.fast:
            try:
                return self._decode_fast(originator_id, originator_version, topic, state)
            except Exception:  # noqa: S110 (the mapper decides, and raises its own error)
                pass
        return self.mapper.to_domain_event(
            Notification(
                id=position,
                originator_id=originator_id,
                originator_version=originator_version,
                topic=topic,
                state=bytes(state),
            )
        )

    def _decode_fast(
        self, originator_id: UUID | str, originator_version: int, topic: str, state: bytes
    ) -> Any:
        found = self._classes.get((topic, type(originator_id)))
        if found is None:
            cls = resolve_topic(topic)
            convert = find_id_convertor(
                cast("Hashable", cls), cast("Hashable", type(originator_id))
            )
            found = self._classes[topic, type(originator_id)] = (cls, convert)
        cls, convert = found
        event_state = orjson.loads(state)
        if type(event_state) is not dict:
            raise _LeftToMapperError
        for key, item in event_state.items():  # the top level, inline (most values are flat)
            kind = type(item)
            if kind is dict or kind is list:
                event_state[key] = self._restore(item)
            elif kind is float:
                raise _LeftToMapperError
        if len(event_state) == 2 and "_type_" in event_state and "_data_" in event_state:
            raise _LeftToMapperError  # the whole state is one transcoded value
        event_state["originator_id"] = convert(originator_id)
        event_state["originator_version"] = originator_version
        class_version = getattr(cls, "class_version", 1)
        from_version = event_state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", event_state)
        return event

    def _restore(self, value: Any) -> Any:
        """What the transcoder's object hook makes of a decoded value (innermost first)."""
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(item) in _CONTAINERS:
                    value[key] = self._restore(item)
                elif type(item) is float:
                    raise _LeftToMapperError
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                return self._names[value["_type_"]].decode(value["_data_"])
            return value
        if kind is list:
            return [self._restore(item) for item in value]
        if kind is float:
            raise _LeftToMapperError
        return value


_CONTAINERS = (dict, list)
