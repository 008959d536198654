/**
 * Secrets named by a recipe are read from the orchestrator's environment and handed to the run
 * only as environment variables (ExecOptions.env). Values never appear in messages.
 */
import { RecipeError } from '../errors.js';
import type { RecipeDef } from './schema.js';

/**
 * `{NAME: value}` for every secret the recipe declares, taken from `source` (default
 * process.env). Throws RecipeError naming (only) the first secret that is unset or empty.
 */
export function secretEnv(
  recipe: { def: Pick<RecipeDef, 'secrets'>; file?: string },
  source: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of recipe.def.secrets) {
    const value = source[name];
    if (value === undefined || value === '') {
      const where = recipe.file ? `recipe ${recipe.file}: ` : '';
      throw new RecipeError(`${where}secret "${name}" is not set in the orchestrator's environment`);
    }
    env[name] = value;
  }
  return env;
}

/**
 * Every secret name whose value is masked in what retrain keeps of a training's log: the
 * training's `secrets` and the registry login's (never given to the training, masked all the same).
 */
export function maskedSecretNames(def: Pick<RecipeDef, 'secrets' | 'imageLogin'>): string[] {
  return [...def.secrets, ...(def.imageLogin ? [def.imageLogin.user, def.imageLogin.token] : [])];
}
