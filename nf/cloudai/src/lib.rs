//! Cloud AI function of the NetGPT testbed: the cloud LLM served over SBI
//! (`ncloudai-gen/v1`) and an OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`).
