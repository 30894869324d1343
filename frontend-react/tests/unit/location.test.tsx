import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { App } from '@/app/app';
import { roundDegrees } from '@/features/location/api/location-choice';
import { identification, photoFile } from './fixtures';
import { server } from './msw-server';

type Sent = { lat: string | null; lon: string | null; month: string | null };

// jsdom has no geolocation: a browser's, answering with a fixed exact position (Helsinki's Kallio).
let positionCalls = 0;
function installGeolocation(latitude = 60.1841, longitude = 24.9501) {
  positionCalls = 0;
  Object.defineProperty(navigator, 'geolocation', {
    configurable: true,
    value: {
      getCurrentPosition: (success: PositionCallback) => {
        positionCalls += 1;
        success({ coords: { latitude, longitude, accuracy: 10 }, timestamp: Date.now() } as GeolocationPosition);
      },
    },
  });
}

function recordPredict(sent: Sent[]) {
  server.use(
    http.post('*/predict', async ({ request }) => {
      const form = await request.formData();
      sent.push({ lat: form.get('lat') as string | null, lon: form.get('lon') as string | null, month: form.get('month') as string | null });
      return HttpResponse.json(identification('dangerous'));
    }),
  );
}

async function identifyOnePhoto(user: ReturnType<typeof userEvent.setup>) {
  await user.upload(screen.getByLabelText('Choose from gallery'), photoFile());
  await user.click(await screen.findByRole('button', { name: 'Use this photo' }));
  await screen.findByTestId('verdict-banner');
}

beforeEach(() => {
  window.localStorage.clear();
  installGeolocation();
});
afterEach(() => window.localStorage.clear());

describe('location opt-in', () => {
  it('asks once, in plain words; allowed, only whole degrees and the month leave the phone', async () => {
    const sent: Sent[] = [];
    recordPredict(sent);
    const user = userEvent.setup();
    render(<App />);
    const prompt = screen.getByTestId('location-prompt');
    expect(prompt).toHaveTextContent(/your exact position never leaves this phone/i);
    expect(prompt).toHaveTextContent(/whole degrees/i);
    expect(positionCalls).toBe(0);
    await user.click(screen.getByRole('button', { name: 'Allow rough location' }));
    expect(screen.queryByTestId('location-prompt')).not.toBeInTheDocument();
    await waitFor(() => expect(positionCalls).toBe(1));
    await identifyOnePhoto(user);
    expect(sent).toEqual([{ lat: '60', lon: '25', month: String(new Date().getMonth() + 1) }]);
    expect(window.localStorage.getItem('mushroom-id.location-choice')).toBe('allowed');
  });

  it('declined: never asked again, nothing sent, until the setting turns it on', async () => {
    const sent: Sent[] = [];
    recordPredict(sent);
    const user = userEvent.setup();
    const first = render(<App />);
    await user.click(screen.getByRole('button', { name: 'No, thanks' }));
    expect(screen.queryByTestId('location-prompt')).not.toBeInTheDocument();
    first.unmount();

    // A later visit: the choice is remembered.
    render(<App />);
    expect(screen.queryByTestId('location-prompt')).not.toBeInTheDocument();
    await identifyOnePhoto(user);
    expect(sent).toEqual([{ lat: null, lon: null, month: null }]);
    expect(positionCalls).toBe(0);

    await user.click(screen.getAllByRole('button', { name: 'New photo' })[0]!);
    await user.click(screen.getByText('Settings'));
    const setting = screen.getByRole('checkbox', { name: 'Use my rough location (whole degrees) and the month' });
    expect(setting).not.toBeChecked();
    await user.click(setting);
    expect(setting).toBeChecked();
    expect(await screen.findByText('Using your rough location: 60°, 25°.')).toBeInTheDocument();
    await identifyOnePhoto(user);
    expect(sent[1]).toMatchObject({ lat: '60', lon: '25' });
    expect(screen.queryByTestId('location-prompt')).not.toBeInTheDocument();
  });

  it('rounds to whole degrees, halves away from zero, as the server does', () => {
    expect([roundDegrees(60.5), roundDegrees(-60.5), roundDegrees(-0.4), roundDegrees(24.49), roundDegrees(-33.87)]).toEqual([61, -61, 0, 24, -34]);
  });
});
