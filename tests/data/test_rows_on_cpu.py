"""The one row reader names the file when it is not what its name says."""

import pytest

from cadft_verl.math.rows import ReadError, read_parquet


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    bad = tmp_path / "train.parquet"
    bad.write_text('{"question": "1+1?"}\n')
    with pytest.raises(ReadError, match=rf"{bad}: not a parquet file"):
        list(read_parquet(str(bad)))
