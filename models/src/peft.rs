//! LoRA adapters on disk in the Hugging Face PEFT layout (`adapter_config.json` +
//! `adapter_model.safetensors`), and a registry serving many adapters over one base model.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::gpt2::{Gpt2, Gpt2Lm, Proj, ProjDelta};
use crate::lora::{LoraAdapter, LoraConfig, LoraWeights};
use crate::{Error, Result};

/// File name of the adapter configuration.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// File name of the adapter weights.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// PEFT module path of a GPT-2 projection, e.g. `base_model.model.transformer.h.0.attn.c_attn`.
pub fn gpt2_module_path(layer: usize, proj: Proj) -> String {
    format!("base_model.model.transformer.h.{layer}.{}", proj.name())
}

/// `adapter_config.json`, the fields PEFT reads for a LoRA adapter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// Always `"LORA"`.
    pub peft_type: String,
    /// Always `"CAUSAL_LM"`.
    pub task_type: String,
    /// Rank.
    pub r: usize,
    /// Scaling numerator.
    pub lora_alpha: f64,
    /// Dropout used in training (we train without).
    #[serde(default)]
    pub lora_dropout: f64,
    /// Adapted module names.
    pub target_modules: Vec<String>,
    /// The base model the adapter was trained on.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// True for GPT-2 (Conv1D weights are stored `[in, out]`).
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Bias handling; always `"none"`.
    #[serde(default = "none")]
    pub bias: String,
    /// Saved for inference.
    #[serde(default)]
    pub inference_mode: bool,
}

fn none() -> String {
    "none".into()
}

/// Writes `adapter` to `dir` in PEFT layout.
pub fn save_adapter(adapter: &LoraAdapter, base_model: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let cfg = AdapterConfig {
        peft_type: "LORA".into(),
        task_type: "CAUSAL_LM".into(),
        r: adapter.config.r,
        lora_alpha: adapter.config.alpha,
        lora_dropout: 0.0,
        target_modules: adapter.config.target_modules.clone(),
        base_model_name_or_path: Some(base_model.into()),
        fan_in_fan_out: true,
        bias: none(),
        inference_mode: true,
    };
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Format(e.to_string()))?;
    std::fs::write(dir.join(CONFIG_FILE), text)?;
    let mut ts = HashMap::new();
    for ((l, p), w) in &adapter.weights {
        let n = gpt2_module_path(*l, *p);
        ts.insert(format!("{n}.lora_A.weight"), w.a.detach());
        ts.insert(format!("{n}.lora_B.weight"), w.b.detach());
    }
    candle_core::safetensors::save(&ts, dir.join(WEIGHTS_FILE))?;
    Ok(())
}

/// Reads a PEFT LoRA adapter for GPT-2 from `dir`. Names with or without PEFT's
/// `base_model.model.` / `transformer.` prefixes and with `.default` suffixes are accepted.
pub fn load_adapter(dir: &Path, device: &Device) -> Result<LoraAdapter> {
    let text = std::fs::read_to_string(dir.join(CONFIG_FILE))?;
    let cfg: AdapterConfig =
        serde_json::from_str(&text).map_err(|e| Error::Format(format!("{CONFIG_FILE}: {e}")))?;
    if cfg.peft_type != "LORA" {
        return Err(Error::Format(format!(
            "peft_type {} is not LORA",
            cfg.peft_type
        )));
    }
    let config = LoraConfig {
        r: cfg.r,
        alpha: cfg.lora_alpha,
        target_modules: cfg.target_modules,
    };
    let ts = candle_core::safetensors::load(dir.join(WEIGHTS_FILE), device)?;
    let mut parts: HashMap<(usize, Proj), (Option<Tensor>, Option<Tensor>)> = HashMap::new();
    for (name, t) in ts {
        let (layer, proj, is_a) =
            parse_name(&name).ok_or_else(|| Error::Format(format!("unexpected tensor {name}")))?;
        let e = parts.entry((layer, proj)).or_default();
        if is_a {
            e.0 = Some(t.to_dtype(candle_core::DType::F32)?);
        } else {
            e.1 = Some(t.to_dtype(candle_core::DType::F32)?);
        }
    }
    let mut weights = std::collections::BTreeMap::new();
    for (key, (a, b)) in parts {
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(Error::Format(format!(
                    "layer {} {}: lora_A or lora_B missing",
                    key.0,
                    key.1.name()
                )))
            }
        };
        if a.dim(0)? != config.r || b.dim(1)? != config.r {
            return Err(Error::Format(format!(
                "rank of {} differs from r={}",
                key.1.name(),
                config.r
            )));
        }
        weights.insert(
            key,
            LoraWeights {
                a,
                b,
                scale: config.scale(),
            },
        );
    }
    if weights.is_empty() {
        return Err(Error::Format("adapter holds no LoRA weights".into()));
    }
    Ok(LoraAdapter { config, weights })
}

/// `(layer, projection, is_lora_A)` of a PEFT tensor name.
fn parse_name(name: &str) -> Option<(usize, Proj, bool)> {
    let name = name.replace(".default", "");
    let (stem, is_a) = if let Some(s) = name.strip_suffix(".lora_A.weight") {
        (s, true)
    } else {
        (name.strip_suffix(".lora_B.weight")?, false)
    };
    let rest = &stem[stem.find("h.")? + 2..];
    let (layer, module) = rest.split_once('.')?;
    let proj = Proj::ALL.into_iter().find(|p| p.name() == module)?;
    Some((layer.parse().ok()?, proj, is_a))
}

/// Adapters loaded once over one shared base model; each request picks one by name.
pub struct AdapterRegistry {
    base: Arc<Gpt2>,
    adapters: RwLock<HashMap<String, Arc<LoraAdapter>>>,
}

impl AdapterRegistry {
    /// A registry over `base` with no adapters.
    pub fn new(base: Arc<Gpt2>) -> Self {
        Self {
            base,
            adapters: RwLock::new(HashMap::new()),
        }
    }
    /// The shared base model.
    pub fn base(&self) -> &Arc<Gpt2> {
        &self.base
    }
    /// Adds (or replaces) adapter `name`.
    pub fn insert(&self, name: &str, adapter: LoraAdapter) {
        self.adapters
            .write()
            .expect("adapter lock")
            .insert(name.into(), Arc::new(adapter));
    }
    /// Loads a PEFT adapter folder as `name`.
    pub fn load(&self, name: &str, dir: &Path) -> Result<()> {
        let a = load_adapter(dir, self.base.device())?;
        self.insert(name, a);
        Ok(())
    }
    /// Adapter `name`, if loaded.
    pub fn get(&self, name: &str) -> Option<Arc<LoraAdapter>> {
        self.adapters
            .read()
            .expect("adapter lock")
            .get(name)
            .cloned()
    }
    /// Names of the loaded adapters, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .adapters
            .read()
            .expect("adapter lock")
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }
    /// A fresh sequence over the base model with adapter `name` (`None`: the base alone).
    pub fn lm(&self, name: Option<&str>) -> Result<Gpt2Lm> {
        let adapter: Option<Arc<dyn ProjDelta>> = match name {
            None => None,
            Some(n) => Some(
                self.adapters
                    .read()
                    .expect("adapter lock")
                    .get(n)
                    .cloned()
                    .ok_or_else(|| Error::Invalid(format!("no adapter {n}")))?,
            ),
        };
        Ok(Gpt2Lm::new(self.base.clone(), adapter))
    }
}
