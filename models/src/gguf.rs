//! GGUF files: open one, read its metadata and tensors. Thin helpers over candle's reader.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;

use crate::{Error, Result};

/// An opened GGUF file: its parsed header (metadata, tensor index) and a reader for tensor data.
pub struct Gguf {
    /// Where the file lives.
    pub path: PathBuf,
    /// Metadata and tensor infos.
    pub content: Content,
    reader: BufReader<File>,
}

impl Gguf {
    /// Opens `path` and parses its header; tensor data is read lazily.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file =
            File::open(&path).map_err(|e| Error::Format(format!("{}: {e}", path.display())))?;
        let file_size = file
            .metadata()
            .map_err(|e| Error::Format(format!("{}: {e}", path.display())))?
            .len();
        let mut reader = BufReader::new(file);
        // candle divides by `general.alignment` unchecked (0 panics): a hostile header must
        // be an error, not a crash of whoever opens the file.
        let content =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut reader)))
                .map_err(|_| {
                    Error::Format(format!("{}: not a GGUF file: bad header", path.display()))
                })?
                .map_err(|e| Error::Format(format!("{}: not a GGUF file: {e}", path.display())))?;
        check_tensor_index(&content, file_size)
            .map_err(|e| Error::Format(format!("{}: {e}", path.display())))?;
        Ok(Self {
            path,
            content,
            reader,
        })
    }

    /// The metadata value under `key`, or a format error naming the key.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| Error::Format(format!("GGUF metadata has no `{key}`")))
    }

    /// A `u32` metadata value (accepts any integer width that fits).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.get(key)?;
        v.to_u32()
            .or_else(|_| v.to_i32().map(|x| x as u32))
            .or_else(|_| v.to_u64().map(|x| x as u32))
            .map_err(|_| Error::Format(format!("GGUF `{key}` is not an integer")))
    }

    /// An `f32` metadata value.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.get(key)?;
        v.to_f32()
            .or_else(|_| v.to_f64().map(|x| x as f32))
            .map_err(|_| Error::Format(format!("GGUF `{key}` is not a float")))
    }

    /// A string metadata value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get(key)?
            .to_string()
            .map(|s| s.as_str())
            .map_err(|_| Error::Format(format!("GGUF `{key}` is not a string")))
    }

    /// A string-array metadata value.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let arr = self
            .get(key)?
            .to_vec()
            .map_err(|_| Error::Format(format!("GGUF `{key}` is not an array")))?;
        arr.iter()
            .map(|v| {
                v.to_string()
                    .map(|s| s.as_str())
                    .map_err(|_| Error::Format(format!("GGUF `{key}` holds a non-string")))
            })
            .collect()
    }

    /// An integer-array metadata value.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let arr = self
            .get(key)?
            .to_vec()
            .map_err(|_| Error::Format(format!("GGUF `{key}` is not an array")))?;
        arr.iter()
            .map(|v| {
                v.to_i32()
                    .or_else(|_| v.to_u32().map(|x| x as i32))
                    .map_err(|_| Error::Format(format!("GGUF `{key}` holds a non-integer")))
            })
            .collect()
    }

    /// Whether the file holds a tensor called `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads the tensor `name` onto `device`, still quantized.
    pub fn tensor(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        Ok(self.content.tensor(&mut self.reader, name, device)?)
    }
}

/// Every tensor of the index has at least one dimension, no empty dimension, an element
/// count and byte size that fit a `usize` and whole quantisation blocks, and lies inside the
/// file. candle checks the last only when a tensor is read, overflows (panics) on huge
/// shapes, and reads a zero-sized tensor through a misaligned pointer (an abort).
fn check_tensor_index(content: &Content, file_size: u64) -> std::result::Result<(), String> {
    for (name, info) in &content.tensor_infos {
        let dims = info.shape.dims();
        if dims.is_empty() || dims.contains(&0) {
            return Err(format!("tensor `{name}` has shape {dims:?}"));
        }
        let dt = info.ggml_dtype;
        let bytes = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|n| n % dt.block_size() == 0)
            .and_then(|n| (n / dt.block_size()).checked_mul(dt.type_size()))
            .ok_or_else(|| format!("tensor `{name}`: shape {dims:?} does not fit {dt:?} blocks"))?;
        let end = content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|s| s.checked_add(bytes as u64));
        if end.is_none_or(|e| e > file_size) {
            return Err(format!(
                "tensor `{name}` ({bytes} bytes at offset {}) lies beyond the end of the file ({file_size} bytes)",
                info.offset
            ));
        }
    }
    Ok(())
}
