/**
 * The image a Vast rental boots: the recipe's `image`, else `vast.image`, with `image_login` built
 * from the registry secrets the recipe names (`imageLogin: {user, token}`). The login exists only
 * in memory for the create request: never in job data, Redis, a log line or an error message.
 */
import { RecipeError } from '../errors.js';
import type { RecipeDef } from './schema.js';

export interface RentalImage {
  image: string;
  /** Vast's `image_login`: docker login arguments, `-u USER -p TOKEN registry`. A secret. */
  login?: string;
  /** The secret values inside `login`, for masking anything that might echo them. */
  secrets: string[];
}

/** Docker Hub when the first path segment is not a host (no `.` or `:`, not `localhost`). */
export function registryOf(image: string): string {
  const first = image.split('/')[0] ?? '';
  const isHost = image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  return isHost ? first : 'docker.io';
}

/** Characters docker login arguments may hold here: no whitespace (Vast splits the string on it). */
const LOGIN_VALUE_RE = /^[^\s]{1,512}$/;

/**
 * The image and login for a rental. RecipeError (naming only the secret, never a value) when a
 * named registry secret is unset, empty or holds whitespace.
 */
export function rentalImage(
  recipe: { def: Pick<RecipeDef, 'image' | 'imageLogin'>; file?: string },
  fallback: string,
  env: NodeJS.ProcessEnv = process.env,
): RentalImage {
  const image = recipe.def.image ?? fallback;
  const names = recipe.def.imageLogin;
  if (!names || !recipe.def.image) return { image, secrets: [] };
  const where = recipe.file ? `recipe ${recipe.file}: ` : '';
  const read = (role: string, name: string): string => {
    const v = env[name];
    if (v === undefined || v === '')
      throw new RecipeError(
        `${where}imageLogin.${role}: secret "${name}" is not set in the orchestrator's environment`,
      );
    if (!LOGIN_VALUE_RE.test(v))
      throw new RecipeError(`${where}imageLogin.${role}: secret "${name}" holds whitespace or is too long`);
    return v;
  };
  const user = read('user', names.user);
  const token = read('token', names.token);
  return { image, login: `-u ${user} -p ${token} ${registryOf(image)}`, secrets: [user, token] };
}

/** `text` with every secret of the image login replaced (for errors that might echo a request). */
export function maskLogin(text: string, img: Pick<RentalImage, 'secrets'> | undefined): string {
  let out = text;
  for (const s of img?.secrets ?? []) if (s) out = out.split(s).join('[REDACTED]');
  return out;
}

/**
 * Vast shows a bad image (pull error, private image without credentials, OCI error) as error text
 * in `status_msg` while the instance sits in created/loading (vast-reality.md "Booting"). Returns
 * that line when it is an image error, else undefined.
 */
export function imageErrorIn(statusMsg: string | null | undefined): string | undefined {
  if (!statusMsg) return undefined;
  const m = statusMsg.replace(/[\r\n]+/g, ' ').trim();
  const isError = /error|denied|unauthorized|failed/i.test(m);
  const aboutImage = /pull|image|manifest|registry|repository|unauthorized|docker login|oci runtime/i.test(m);
  return isError && aboutImage ? m.slice(0, 300) : undefined;
}
