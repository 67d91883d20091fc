"""Synthetic rows streamed into pyarrow, checked whole.

The server streams Parquet; the client reads it to the end (with a progress bar when
asked), parses it and checks the row count against what was asked: a stream cut short
(a proxy's timeout, a dropped connection) raises instead of handing back fewer rows.
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from service.client.errors import TruncatedDownload
from service.client.transport import Transport, raise_for_problem

__all__ = ["stream_samples", "where_params"]


def where_params(where: dict[str, Any] | None) -> list[str]:
    """``{"region": "south"}`` as the API's ``where=region:south`` (one syntax)."""
    return [f"{column}:{value}" for column, value in (where or {}).items()]


def stream_samples(
    transport: Transport,
    release_id: str,
    n: int,
    *,
    seed: int | None = None,
    where: dict[str, Any] | None = None,
    progress: bool = False,
) -> pa.Table:
    params: dict[str, Any] = {"n": n, "format": "parquet", "where": where_params(where)}
    if seed is not None:
        params["seed"] = seed
    buffer = io.BytesIO()
    path = f"/v1/releases/{release_id}/samples"
    try:
        with transport.http.stream("GET", path, params=params) as response:
            raise_for_problem(response)
            if progress:
                _read_with_bar(response, buffer, n)
            else:
                for chunk in response.iter_bytes():
                    buffer.write(chunk)
    except httpx.RemoteProtocolError as e:  # the connection closed mid-stream
        raise TruncatedDownload(f"release {release_id}: the stream was cut ({e})") from e
    try:
        table = pq.read_table(io.BytesIO(buffer.getvalue()))
    except (pa.ArrowInvalid, OSError) as e:
        raise TruncatedDownload(f"release {release_id}: the stream ended early ({e})") from e
    if table.num_rows != n:
        raise TruncatedDownload(f"release {release_id}: {table.num_rows:,} rows of {n:,}")
    return table


def _read_with_bar(response: Any, buffer: io.BytesIO, n: int) -> None:
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task(f"{n:,} rows", total=None)
        for chunk in response.iter_bytes():
            buffer.write(chunk)
            bar.update(task, advance=len(chunk))
