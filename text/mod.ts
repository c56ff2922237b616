// Tokenizers: the contract, the byte-level tokenizer, and Hugging Face's formats. The package as the tests see it.

export * from "./tokenizer.ts";
export * from "./huggingface.ts";
export * from "./load.ts";
