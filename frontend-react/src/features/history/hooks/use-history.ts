import { useCallback, useEffect, useState } from 'react';
import { clearHistory, listHistory, type HistoryRecord } from '../api/history-store';

/** The history list, reloaded whenever `version` changes (a new identification was stored). */
export function useHistory(version: number) {
  const [records, setRecords] = useState<HistoryRecord[] | null>(null);

  useEffect(() => {
    let cancelled = false;
    void listHistory().then((loaded) => {
      if (!cancelled) setRecords(loaded);
    });
    return () => {
      cancelled = true;
    };
  }, [version]);

  const clear = useCallback(async () => {
    await clearHistory();
    setRecords([]);
  }, []);

  return { records, clear };
}
