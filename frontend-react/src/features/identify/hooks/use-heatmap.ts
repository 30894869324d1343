import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError } from '@/lib/api-error';
import { explainPhoto } from '../api/explain-photo';

export type HeatmapState =
  | { status: 'hidden' }
  | { status: 'loading' }
  | { status: 'shown'; url: string }
  | { status: 'error'; error: ApiError };

/** Fetches the heat map on first show and keeps it (as an object URL); the parent remounts per photo. */
export function useHeatmap(photo: Blob | null, species: string | null) {
  const [state, setState] = useState<HeatmapState>({ status: 'hidden' });
  const urlRef = useRef<string | null>(null);

  useEffect(() => {
    return () => {
      if (urlRef.current) URL.revokeObjectURL(urlRef.current);
      urlRef.current = null;
    };
  }, [photo, species]);

  const toggle = useCallback(async () => {
    if (state.status === 'shown' || state.status === 'loading') {
      setState({ status: 'hidden' });
      return;
    }
    if (urlRef.current) {
      setState({ status: 'shown', url: urlRef.current });
      return;
    }
    if (!photo || !species) return;
    setState({ status: 'loading' });
    try {
      const png = await explainPhoto(photo, species);
      urlRef.current = URL.createObjectURL(png);
      setState({ status: 'shown', url: urlRef.current });
    } catch (error) {
      setState({ status: 'error', error: error instanceof ApiError ? error : new ApiError('unknown', null, null) });
    }
  }, [photo, species, state.status]);

  return { state, toggle };
}
