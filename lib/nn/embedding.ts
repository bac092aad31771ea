/**
 * Token embeddings.
 * @module
 */
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { embedding } from "../tensor/ops/mod.ts";
import { Module } from "./module.ts";
import type { Parameter } from "./parameter.ts";
import { createParameter, type ParameterInit } from "./init.ts";

/** Options for {@link Embedding}. */
export interface EmbeddingLayerOptions {
  /** Parameter dtype (default F32). */
  dtype?: DType;
  /** Fill (default normal std 1, as PyTorch). */
  init?: ParameterInit;
}

/**
 * A lookup table `[numEmbeddings, embeddingDim]`. The output is F32 whatever the table's dtype
 * (activations are f32 throughout; rows are converted as they are gathered).
 *
 * @example
 * ```ts
 * import { Embedding } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const e = new Embedding(10, 4);
 * console.log(e.forward(Tensor.fromArray([1, 2, 3], [1, 3], "I64")).shape); // [1, 3, 4]
 * ```
 */
export class Embedding extends Module {
  /** Rows. */
  readonly numEmbeddings: number;
  /** Row size. */
  readonly embeddingDim: number;

  /**
   * @param numEmbeddings Rows (vocabulary size).
   * @param embeddingDim Row size.
   * @param options dtype and init.
   */
  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingLayerOptions = {}) {
    super();
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.registerParameter(
      "weight",
      createParameter([numEmbeddings, embeddingDim], options.dtype ?? "F32", { init: options.init ?? { normal: { std: 1 } } }),
    );
  }

  /** The table. */
  get weight(): Parameter {
    return this.param("weight");
  }

  /** Integer ids of any shape → `[...ids.shape, embeddingDim]` F32. */
  override forward(ids: Tensor): Tensor {
    return embedding(ids, this.paramData("weight"), { dtype: "F32" });
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}`;
  }
}
