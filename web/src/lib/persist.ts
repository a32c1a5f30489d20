import { useCallback, useEffect, useState } from 'react';

const PREFIX = 'modelseal.ui.';

// useState that survives a reload (localStorage). Never used for secrets.
export function usePersisted<T>(key: string, initial: T): [T, (v: T | ((p: T) => T)) => void] {
  const [value, setValue] = useState<T>(() => {
    try {
      const raw = localStorage.getItem(PREFIX + key);
      return raw === null ? initial : (JSON.parse(raw) as T);
    } catch {
      return initial;
    }
  });
  useEffect(() => {
    try {
      localStorage.setItem(PREFIX + key, JSON.stringify(value));
    } catch {
      /* storage full or disabled: state lives for this page only */
    }
  }, [key, value]);
  const set = useCallback((v: T | ((p: T) => T)) => setValue(v as T), []);
  return [value, set];
}

export function clearPersisted(): void {
  for (const k of Object.keys(localStorage)) if (k.startsWith(PREFIX)) localStorage.removeItem(k);
}
