import { LocalStore } from './local.js';
import type { ArtifactStore } from './store.js';

export type { ArtifactStore, PutResult } from './store.js';
export { LocalStore } from './local.js';
export { keys, dashed } from './layout.js';
export { validateKey, validatePrefix } from './keys.js';

/** A folder on this machine. */
export interface LocalStoreConfig {
  kind: 'local';
  root: string;
}

/**
 * Store configuration, discriminated on `kind`. Add a backend by adding its config to this union and
 * a case to `createStore`; the exhaustive switch makes the compiler point at every place to extend.
 */
export type StoreConfig = LocalStoreConfig;

/** Builds the ArtifactStore a configuration names. */
export function createStore(cfg: StoreConfig): ArtifactStore {
  switch (cfg.kind) {
    case 'local':
      return new LocalStore(cfg.root);
    default: {
      const unknownKind: never = cfg.kind;
      throw new Error(`unknown store kind: ${String(unknownKind)}`);
    }
  }
}
